//! Rate limits per route class and per key.
//!
//! The key is the user when the request is authenticated, otherwise the client address
//! ([`ClientIp`], which honours `X-Forwarded-For` only from trusted proxies); the auth routes
//! (login, registration, refresh) are always keyed by the client address, whatever token comes
//! with them. Limits are GCRA
//! ("N per minute, burst N"): in memory by default ([`governor`]), in Redis when configured so
//! that every server process shares them. When Redis fails or is slow the decision is made in
//! memory instead — requests are never refused because the limiter's backend is down — and
//! `rate_limit_backend_errors_total` counts it.
//!
//! How authentication feeds the key: either a layer outside the server's router inserts a
//! [`RateLimitKey`] request extension, or (the normal way) the auth step registers a
//! [`RateLimitKeyResolver`] that derives the key from a *verified* token. Never derive it from
//! an unverified claim: anyone could then spread requests over invented users.

mod memory;
mod redis_backend;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConnectionUrl, RateLimitConfig};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::observability::metrics as m;

pub use self::redis_backend::RedisError;

/// `X-RateLimit-Limit`: requests allowed per window.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests left right now.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until the allowance is whole again.
pub const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A group of routes sharing limits (rate, body size, time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Login, registration, token refresh: strict rate limit, small bodies.
    Auth,
    /// Every other `/v1` route.
    General,
    /// Health, metrics, OpenAPI and docs: not rate-limited.
    Operational,
}

impl RouteClass {
    /// The label used in metrics and Redis keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::General => "general",
            Self::Operational => "operational",
        }
    }

    /// The classes that are rate-limited.
    pub const LIMITED: [RouteClass; 2] = [RouteClass::Auth, RouteClass::General];

    /// Requests per minute for this class, `None` when it is not limited.
    fn per_minute(self, config: &RateLimitConfig) -> Option<u32> {
        match self {
            Self::Auth => Some(config.auth_per_minute),
            Self::General => Some(config.general_per_minute),
            Self::Operational => None,
        }
    }
}

/// Who a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey(String);

impl RateLimitKey {
    /// An authenticated user.
    pub fn user(id: impl fmt::Display) -> Self {
        Self(format!("user:{id}"))
    }

    /// An anonymous client. IPv6 clients are keyed by their /64, which one subscriber
    /// typically owns entirely, so rotating addresses within it does not reset the limit.
    pub fn client(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(format!("ip:{v4}")),
            IpAddr::V6(v6) => {
                let net = ipnet::Ipv6Net::new(v6, 64).map(|n| n.trunc());
                match net {
                    Ok(net) => Self(format!("ip:{net}")),
                    Err(_) => Self(format!("ip:{v6}")),
                }
            }
        }
    }

    /// Requests whose client address is unknown (the server was not given connection info).
    fn unknown() -> Self {
        Self("ip:unknown".to_owned())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Derives the rate-limit key of an authenticated request from its headers (a verified access
/// token in the `access_token` cookie or the `Authorization` header). Registered by the auth
/// step with [`crate::AppStateBuilder::rate_limit_key_resolver`]; `None` means "anonymous".
pub trait RateLimitKeyResolver: Send + Sync + 'static {
    /// The key for this request, or `None` to key on the client address.
    fn resolve(&self, headers: &HeaderMap) -> Option<RateLimitKey>;
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests per window.
    pub limit: u32,
    /// Requests that would be allowed right after this one.
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset_after: Duration,
    /// Until the next request would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// Adds the `X-RateLimit-*` headers.
    fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT_HEADER, HeaderValue::from(self.limit));
        headers.insert(REMAINING_HEADER, HeaderValue::from(self.remaining));
        headers.insert(RESET_HEADER, HeaderValue::from(ceil_secs(self.reset_after)));
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The limiter: a quota per limited class, in memory and optionally in Redis.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    enabled: bool,
    config: RateLimitConfig,
    memory: memory::MemoryLimiter,
    redis: Option<redis_backend::RedisLimiter>,
    resolver: Option<Arc<dyn RateLimitKeyResolver>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("enabled", &self.inner.enabled)
            .field("redis", &self.inner.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter for `config`, backed by Redis at `redis` when given (connected lazily, so a
    /// Redis that is down at start-up only means in-memory decisions until it is up).
    /// Must be called within a Tokio runtime when `redis` is given.
    pub fn new(
        config: &RateLimitConfig,
        redis: Option<&ConnectionUrl>,
        resolver: Option<Arc<dyn RateLimitKeyResolver>>,
    ) -> Result<Self, RedisError> {
        let quotas = RouteClass::LIMITED
            .into_iter()
            .filter_map(|class| Some((class, class.per_minute(config)?)))
            .filter(|(_, per_minute)| *per_minute > 0)
            .collect::<Vec<_>>();
        let redis = redis
            .map(|url| {
                redis_backend::RedisLimiter::connect_lazily(
                    url,
                    &config.redis_key_prefix,
                    Duration::from_millis(config.backend_timeout_ms),
                )
            })
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                enabled: config.enabled,
                config: config.clone(),
                memory: memory::MemoryLimiter::new(&quotas),
                redis,
                resolver,
            }),
        })
    }

    /// The Redis connection of the limiter, for the readiness check.
    pub(crate) fn redis(&self) -> Option<&redis_backend::RedisLimiter> {
        self.inner.redis.as_ref()
    }

    /// Counts one request of `class` against `key`; `None` when the class is not limited.
    pub async fn check(&self, class: RouteClass, key: &RateLimitKey) -> Option<Decision> {
        if !self.inner.enabled {
            return None;
        }
        let limit = class.per_minute(&self.inner.config).filter(|n| *n > 0)?;
        if let Some(redis) = &self.inner.redis {
            match redis.check(class, key, limit).await {
                Ok(decision) => return Some(decision),
                Err(redis_backend::Unavailable) => m::record_rate_limit_fallback(),
            }
        }
        self.inner.memory.check(class, key)
    }

    /// The key of a request: on the auth routes always the client address (login,
    /// registration and refresh are what a token would be used to get around: each new
    /// account's token would key the next registration); elsewhere the extension set upstream,
    /// else the resolver's, else the client address.
    fn key_for(&self, class: RouteClass, req: &Request) -> RateLimitKey {
        if class != RouteClass::Auth {
            if let Some(key) = req.extensions().get::<RateLimitKey>() {
                return key.clone();
            }
            if let Some(key) = self
                .inner
                .resolver
                .as_ref()
                .and_then(|r| r.resolve(req.headers()))
            {
                return key;
            }
        }
        match req.extensions().get::<ClientIp>() {
            Some(ClientIp(ip)) => RateLimitKey::client(*ip),
            None => RateLimitKey::unknown(),
        }
    }
}

/// Middleware for one route class: 429 with `Retry-After` when over the limit, and the
/// `X-RateLimit-*` headers on every answer of a limited route.
pub(crate) async fn enforce(
    State((limiter, class)): State<(RateLimiter, RouteClass)>,
    req: Request,
    next: Next,
) -> Response {
    let key = limiter.key_for(class, &req);
    let Some(decision) = limiter.check(class, &key).await else {
        return next.run(req).await;
    };
    if !decision.allowed {
        m::record_rate_limited(class);
        let mut response = ApiError::too_many_requests(decision.retry_after).into_response();
        decision.write_headers(response.headers_mut());
        return response;
    }
    let mut response = next.run(req).await;
    decision.write_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(RateLimitKey::client(a), RateLimitKey::client(b));
        assert_ne!(RateLimitKey::client(a), RateLimitKey::client(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(RateLimitKey::client(mapped).as_str(), "ip:192.0.2.7");
    }

    #[test]
    fn headers_round_up_seconds() {
        let decision = Decision {
            allowed: true,
            limit: 10,
            remaining: 3,
            reset_after: Duration::from_millis(1500),
            retry_after: Duration::ZERO,
        };
        let mut headers = HeaderMap::new();
        decision.write_headers(&mut headers);
        assert_eq!(headers[LIMIT_HEADER], "10");
        assert_eq!(headers[REMAINING_HEADER], "3");
        assert_eq!(headers[RESET_HEADER], "2");
    }
}
