//! The system's HTTP API, as the load generator uses it.

use std::time::Duration;

use serde_json::{Value, json};

/// Why a call failed.
#[derive(Debug)]
pub struct ApiError(pub String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client of the system's API, signed in or not. With several base URLs (gateways),
/// it uses one and goes on to the next when that one refuses the connection, as a
/// client behind a load balancer would see it.
#[derive(Clone)]
pub struct Api {
    bases: std::sync::Arc<[String]>,
    first: usize,
    http: reqwest::Client,
    token: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for Api {
    /// Without the token: it is a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.bases[self.first])
            .field("signed_in", &self.token.is_some())
            .finish()
    }
}

impl Api {
    /// A client of `bases` (at least one) with a connection pool large enough for the load.
    pub fn new(bases: &[String]) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { bases: bases.into(), first: 0, http, token: None }
    }

    /// The same client, using base URL `n` (modulo their number) first.
    pub fn starting_at(&self, n: usize) -> Self {
        Self { first: n % self.bases.len(), ..self.clone() }
    }

    /// The same client signed in as `email`: every call carries its bearer token.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Self, ApiError> {
        let body = json!({"email": email, "password": password});
        let (status, answer) = self.call(reqwest::Method::POST, "/api/auth/token", Some(body)).await?;
        let answer = Self::expect(status, answer, 200, &format!("POST /api/auth/token as {email}"))?;
        let token = answer["accessToken"].as_str().ok_or_else(|| ApiError("no accessToken".to_owned()))?;
        Ok(Self { token: Some(token.into()), ..self.clone() })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), ApiError> {
        // This client's gateway first, then the others.
        let (before, from_mine) = self.bases.split_at(self.first);
        let urls: Vec<String> = from_mine.iter().chain(before).map(|base| format!("{base}{path}")).collect();
        let request = |url: &str| {
            let mut request = self.http.request(method.clone(), url);
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            request
        };
        let response = platform::upstreams::send_to_first_taker(&urls, request, |_, _| {})
            .await
            .map_err(|e| ApiError(format!("{method} {path}: {e}")))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    fn expect(status: u16, body: Value, wanted: u16, what: &str) -> Result<Value, ApiError> {
        if status == wanted { Ok(body) } else { Err(ApiError(format!("{what}: {status} {body}"))) }
    }

    /// The password of every user it signs up.
    pub const PASSWORD: &str = "load-generator";

    /// Signs a user up; returns its id.
    pub async fn sign_up(&self, email: &str) -> Result<String, ApiError> {
        let body = json!({"email": email, "name": "Load", "password": Self::PASSWORD});
        let (status, user) = self.call(reqwest::Method::POST, "/api/users", Some(body)).await?;
        let user = Self::expect(status, user, 201, "POST /api/users")?;
        user["id"].as_str().map(str::to_owned).ok_or_else(|| ApiError(format!("no id in {user}")))
    }

    /// Waits until the user's wallet is open (payment-service consumed `UserSignedUp`).
    pub async fn wait_for_wallet(&self, user_id: &str, within: Duration) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, _) =
                self.call(reqwest::Method::GET, &format!("/api/wallets/{user_id}"), None).await?;
            if status == 200 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError(format!("no wallet for {user_id} within {within:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a product.
    pub async fn put_product(&self, sku: &str, price_cents: i64, available: i64) -> Result<(), ApiError> {
        let body = json!({"name": format!("Load {sku}"), "priceCents": price_cents, "available": available});
        let (status, product) =
            self.call(reqwest::Method::PUT, &format!("/api/products/{sku}"), Some(body)).await?;
        Self::expect(status, product, 200, "PUT /api/products").map(drop)
    }

    /// Places an order; returns its id.
    pub async fn place(&self, user_id: &str, items: &[(String, u32)]) -> Result<String, ApiError> {
        let items: Vec<Value> =
            items.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect();
        let body = json!({"userId": user_id, "items": items});
        let (status, order) = self.call(reqwest::Method::POST, "/api/orders", Some(body)).await?;
        let order = Self::expect(status, order, 202, "POST /api/orders")?;
        order["id"].as_str().map(str::to_owned).ok_or_else(|| ApiError(format!("no id in {order}")))
    }

    /// Asks to cancel a confirmed order, retrying (as a user would) while the system
    /// does not answer; a 409 means an earlier try got through and it is under way.
    pub async fn cancel(&self, order_id: &str) -> Result<(), ApiError> {
        let path = format!("/api/orders/{order_id}/cancel");
        let mut last = ApiError(String::new());
        for _ in 0..40 {
            match self.call(reqwest::Method::POST, &path, None).await {
                Ok((202 | 409, _)) => return Ok(()),
                Ok((status, body)) if status < 500 => {
                    return Err(ApiError(format!("POST {path}: {status} {body}")));
                }
                Ok((status, body)) => last = ApiError(format!("POST {path}: {status} {body}")),
                Err(error) => last = error,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(last)
    }

    /// An order's status and failure reason.
    pub async fn status(&self, order_id: &str) -> Result<(String, Option<String>), ApiError> {
        let (status, order) =
            self.call(reqwest::Method::GET, &format!("/api/orders/{order_id}"), None).await?;
        let order = Self::expect(status, order, 200, "GET /api/orders/{id}")?;
        Ok((
            order["status"].as_str().unwrap_or_default().to_owned(),
            order["failureReason"].as_str().map(str::to_owned),
        ))
    }
}
