//! The key user-service signs tokens with: the operator's (`JWT_SIGNING_KEY_FILE`), or
//! its own, generated at first start and kept beside its database, so that a restart
//! (or another instance on the same data) signs with the same key and tokens stay valid.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use platform::auth::Signer;
use platform::config::ConfigError;
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

/// The variable that names the operator's key file.
pub const VARIABLE: &str = "JWT_SIGNING_KEY_FILE";

/// The name of the key file the service keeps beside its database.
pub const KEPT_FILE_NAME: &str = "user-service.jwt.key";

/// Where the signing key is: a PKCS#8 DER Ed25519 private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    /// `JWT_SIGNING_KEY_FILE`: it must exist and hold a key; nothing is generated.
    Given(PathBuf),
    /// The service's own: generated (mode 0600) when missing, read when present.
    Kept(PathBuf),
}

/// Where the key a [`Signer`] holds came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from this file.
    Read(PathBuf),
    /// Generated now and written to this file.
    Created(PathBuf),
    /// Handed over in code (tests).
    InMemory,
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(path) => write!(f, "read from {}", path.display()),
            Self::Created(path) => write!(f, "generated, kept in {}", path.display()),
            Self::InMemory => f.write_str("given in memory"),
        }
    }
}

impl KeyFile {
    /// The key kept beside the SQLite database of `database_url` (the same folder), or in
    /// `./data/` for PostgreSQL and in-memory SQLite, which have no folder of their own.
    pub fn beside_database(database_url: &str) -> Self {
        let folder = Some(database_url)
            .filter(|url| {
                url.starts_with("sqlite:") && !url.contains(":memory:") && !url.contains("mode=memory")
            })
            .and_then(|url| SqliteConnectOptions::from_str(url).ok())
            .map(|options| options.get_filename().parent().map(Path::to_path_buf).unwrap_or_default());
        Self::Kept(folder.unwrap_or_else(|| PathBuf::from("data")).join(KEPT_FILE_NAME))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            Self::Given(path) | Self::Kept(path) => path,
        }
    }

    /// The signer of the key in the file, its tokens valid for `ttl`; for a kept key
    /// missing yet, a new key, written first. A file that cannot be read or written, or
    /// that holds no key, is an error naming [`VARIABLE`] (set it to use another file).
    pub fn signer(&self, ttl: Duration) -> Result<(Signer, KeyOrigin), ConfigError> {
        let path = self.path();
        let read = || -> Result<(Signer, KeyOrigin), ConfigError> {
            let der = fs::read(path).map_err(|e| self.error(format!("cannot read it: {e}")))?;
            let signer = Signer::from_pkcs8_der(&der, ttl).map_err(|e| self.error(e.to_string()))?;
            Ok((signer, KeyOrigin::Read(path.to_owned())))
        };
        match self {
            Self::Kept(_) if !path.exists() => {
                let signer = Signer::generate(ttl);
                let der = signer.to_pkcs8_der().map_err(|e| self.error(e.to_string()))?;
                match create_private(path, &der) {
                    Ok(()) => Ok((signer, KeyOrigin::Created(path.to_owned()))),
                    // Another instance on the same folder was first: its key is the one.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(),
                    Err(e) => Err(self.error(format!("cannot create it: {e}"))),
                }
            }
            _ => read(),
        }
    }

    fn error(&self, reason: String) -> ConfigError {
        let reason = match self {
            Self::Given(_) => reason,
            Self::Kept(_) => {
                format!("unset, so the key is kept beside the database at this path, but {reason}")
            }
        };
        ConfigError { variable: VARIABLE.to_owned(), value: self.path().display().to_string(), reason }
    }
}

/// Writes `contents` to a new file at `path` that only its owner can read, at once whole
/// or not at all: written to a temporary file created with mode 0600 (never readable by
/// others, not even for an instant), then linked to `path`, which fails with
/// `AlreadyExists` rather than replace a key another process wrote meanwhile.
fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(folder)?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{name}.{}.tmp", Uuid::new_v4().simple()));
    let created = write_new_private(&temporary, contents).and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    created?;
    // The new name itself survives a crash only once the folder is synced.
    fs::File::open(folder).and_then(|folder| folder.sync_all())
}

fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn scratch_folder() -> PathBuf {
        let folder = std::env::temp_dir().join(format!("user-service-keys-{}", Uuid::new_v4().simple()));
        fs::create_dir_all(&folder).expect("scratch folder");
        folder
    }

    #[test]
    fn the_kept_key_is_beside_a_sqlite_database_and_under_data_otherwise() {
        let kept = |url: &str| KeyFile::beside_database(url).path().to_owned();
        assert_eq!(kept("sqlite://data/user-service.db?mode=rwc"), Path::new("data/user-service.jwt.key"));
        assert_eq!(kept("sqlite:///var/lib/users/u.db"), Path::new("/var/lib/users/user-service.jwt.key"));
        assert_eq!(kept("sqlite:.chaos/user-service.db"), Path::new(".chaos/user-service.jwt.key"));
        assert_eq!(kept("sqlite://users.db"), Path::new("user-service.jwt.key"));
        for elsewhere in [
            "postgres://postgres@127.0.0.1:5432/user_service",
            "sqlite::memory:",
            "sqlite://x.db?mode=memory",
        ] {
            assert_eq!(kept(elsewhere), Path::new("data/user-service.jwt.key"), "{elsewhere}");
        }
    }

    #[test]
    fn a_kept_key_is_created_once_private_and_read_back_after() {
        let folder = scratch_folder();
        let file = KeyFile::Kept(folder.join("nested").join(KEPT_FILE_NAME));
        let (first, origin) = file.signer(TTL).expect("created");
        assert_eq!(origin, KeyOrigin::Created(file.path().to_owned()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(file.path()).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let (again, origin) = file.signer(TTL).expect("read");
        assert_eq!(origin, KeyOrigin::Read(file.path().to_owned()));
        assert_eq!(again.kid(), first.kid());
        let left: Vec<_> = fs::read_dir(file.path().parent().expect("folder")).expect("list").collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        fs::remove_dir_all(folder).expect("clean up");
    }

    #[test]
    fn a_given_key_is_used_and_a_missing_or_bad_one_is_named() {
        let folder = scratch_folder();
        let path = folder.join("operator.der");
        let operator = Signer::generate(TTL);
        fs::write(&path, operator.to_pkcs8_der().expect("der")).expect("write");
        let (signer, _) = KeyFile::Given(path.clone()).signer(TTL).expect("read");
        assert_eq!(signer.kid(), operator.kid());

        let missing = KeyFile::Given(folder.join("missing.der")).signer(TTL).expect_err("missing");
        assert_eq!(missing.variable, VARIABLE);
        assert!(!folder.join("missing.der").exists(), "a given key is never generated");
        fs::write(&path, b"not a key").expect("write");
        let bad = KeyFile::Given(path.clone()).signer(TTL).expect_err("not a key");
        assert_eq!((bad.variable.as_str(), bad.value.as_str()), (VARIABLE, path.to_str().expect("utf-8")));
        let bad_kept = KeyFile::Kept(path).signer(TTL).expect_err("not a key");
        assert!(bad_kept.reason.contains("beside the database"), "{bad_kept}");
        fs::remove_dir_all(folder).expect("clean up");
    }
}
