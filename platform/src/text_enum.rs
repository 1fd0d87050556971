//! Enums stored and shown as words (statuses, kinds): [`text_enum!`](crate::text_enum)
//! writes the one spelling of each value, its parsing back, and its display, so no
//! service repeats them.

/// Text that names no value of a [`text_enum!`](crate::text_enum) type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownText {
    /// The type it should have named a value of.
    pub what: &'static str,
    /// The text.
    pub text: String,
}

impl std::fmt::Display for UnknownText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a {}", self.text, self.what)
    }
}

impl std::error::Error for UnknownText {}

/// An enum whose values are stored and shown as the given words: `ALL`, `as_str`,
/// `FromStr` (the stores read it back with `platform::db::text_at`) and `Display`.
///
/// ```ignore
/// platform::text_enum! {
///     /// Where a payment stands.
///     pub enum PaymentStatus {
///         /// The wallet was charged.
///         Completed = "COMPLETED",
///         /// The charge was refused.
///         Failed = "FAILED",
///     }
/// }
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The word it is stored and shown as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownText;

            fn from_str(text: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text).ok_or_else(|| {
                    $crate::text_enum::UnknownText { what: stringify!($name), text: text.to_owned() }
                })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        /// A test enum.
        enum Light {
            /// Stop.
            Red = "RED",
            /// Go.
            Green = "GREEN",
        }
    }

    #[test]
    fn every_value_reads_back_as_it_is_written_and_other_text_is_named() {
        for light in Light::ALL {
            assert_eq!(light.as_str().parse::<Light>(), Ok(*light));
            assert_eq!(light.to_string(), light.as_str());
        }
        let unknown = "red".parse::<Light>().expect_err("case matters");
        assert_eq!(unknown.to_string(), "\"red\" is not a Light");
    }
}
