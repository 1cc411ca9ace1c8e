//! Who is calling the admin API, and what they may touch.
//!
//! A host started from `host.yaml` requires `Authorization: Bearer <token>`
//! on every admin request: no token or an unknown one is 401; a tenant's
//! token opens that tenant's views only (403 elsewhere); the operator's
//! token opens everything, host-wide actions included. A host started from a
//! single repo (`-r REPO`) has no credentials: its admin API listens on
//! loopback and every caller is the operator.

use axum::http::{HeaderMap, StatusCode, header};

use super::ApiError;
use crate::tenancy::{HostConfig, TokenDigest};

/// The credentials the admin API accepts.
#[derive(Debug)]
pub struct AdminAuth {
    required: bool,
    operator: Option<TokenDigest>,
    tenants: Vec<(String, TokenDigest)>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Operator,
    Tenant(String),
}

impl AdminAuth {
    /// No credentials: every caller is the operator (single-repo hosts).
    pub fn open() -> Self {
        Self {
            required: false,
            operator: None,
            tenants: Vec::new(),
        }
    }

    /// The operator's and tenants' credentials from host.yaml.
    pub fn from_config(config: &HostConfig) -> Self {
        Self {
            required: true,
            operator: config.admin.operator.clone(),
            tenants: config
                .tenants
                .iter()
                .filter_map(|t| t.token.clone().map(|token| (t.name.clone(), token)))
                .collect(),
        }
    }

    /// Identifies the caller from its bearer token. Every credential is
    /// compared (in constant time), whichever matches, so the time taken
    /// does not tell which one nearly did.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if !self.required {
            return Ok(Caller::Operator);
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(|token| TokenDigest::of(token.trim()))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "an admin token is required: send `Authorization: Bearer <token>`".into(),
                )
            })?;
        let mut caller = None;
        if self
            .operator
            .as_ref()
            .is_some_and(|o| o.matches(&presented))
        {
            caller = Some(Caller::Operator);
        }
        for (tenant, token) in &self.tenants {
            if token.matches(&presented) && caller.is_none() {
                caller = Some(Caller::Tenant(tenant.clone()));
            }
        }
        caller.ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "the admin token is not valid on this host".into(),
            )
        })
    }
}

impl Caller {
    /// Whether the caller may act on `tenant`'s views.
    pub fn may_manage(&self, tenant: &str) -> Result<(), ApiError> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Tenant(own) if own == tenant => Ok(()),
            Caller::Tenant(_) => Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("this token does not open tenant `{tenant}`'s views"),
            )),
        }
    }

    /// The tenant a tenant's token stands for.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Caller::Operator => None,
            Caller::Tenant(name) => Some(name),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme's
/// case does not matter (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth {
            required: true,
            operator: Some(TokenDigest::of("op")),
            tenants: vec![
                ("a".into(), TokenDigest::of("token-a")),
                ("b".into(), TokenDigest::of("token-b")),
            ],
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn no_token_or_an_unknown_one_is_unauthorized() {
        let missing = auth().caller(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.0, StatusCode::UNAUTHORIZED);
        let unknown = auth().caller(&bearer("token-c")).unwrap_err();
        assert_eq!(unknown.0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_tenant_token_opens_its_own_tenant_only() {
        let caller = auth().caller(&bearer("token-a")).unwrap();
        assert_eq!(caller, Caller::Tenant("a".into()));
        assert!(caller.may_manage("a").is_ok());
        assert_eq!(caller.may_manage("b").unwrap_err().0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn the_scheme_is_matched_without_case_and_the_token_exactly() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer token-a".parse().unwrap());
        assert_eq!(auth().caller(&headers).unwrap(), Caller::Tenant("a".into()));
        headers.insert(header::AUTHORIZATION, "Basic token-a".parse().unwrap());
        assert_eq!(
            auth().caller(&headers).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        headers.insert(header::AUTHORIZATION, "Bearer TOKEN-A".parse().unwrap());
        assert_eq!(
            auth().caller(&headers).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn the_operator_token_opens_every_tenant() {
        let caller = auth().caller(&bearer("op")).unwrap();
        assert!(caller.may_manage("a").is_ok() && caller.may_manage("b").is_ok());
    }

    #[test]
    fn a_host_without_credentials_treats_every_caller_as_the_operator() {
        assert_eq!(
            AdminAuth::open().caller(&HeaderMap::new()).unwrap(),
            Caller::Operator
        );
    }
}
