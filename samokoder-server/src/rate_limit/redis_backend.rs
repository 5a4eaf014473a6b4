//! Limits shared by every server process, in Redis: the same GCRA as in memory, run atomically
//! by a Lua script with Redis's own clock (so the processes' clocks need not agree).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, RateLimitKey, RouteClass};
use crate::config::ConnectionUrl;
use crate::observability::metrics as m;

/// After a failure, Redis is left alone this long (decisions are made in memory), so a dead
/// Redis costs one timeout per interval instead of one per request.
const BACKOFF: Duration = Duration::from_secs(5);

/// GCRA. KEYS[1] = the bucket; ARGV[1] = microseconds per request; ARGV[2] = the limit.
/// The stored value is the "theoretical arrival time" (TAT) in microseconds. Returns
/// `{allowed, remaining, reset_after_us, retry_after_us}`.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local period = interval * limit
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now, 0}
";

/// The Redis URL could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("the Redis URL is not valid")]
pub struct RedisError(#[source] redis::RedisError);

/// Redis did not answer usefully; decide in memory.
pub(super) struct Unavailable;

pub(crate) struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    timeout: Duration,
    /// Until when Redis is skipped after a failure.
    skip_until: Mutex<Option<Instant>>,
}

impl RedisLimiter {
    /// Prepares a connection that is only opened by the first request (and re-opened after
    /// failures by the connection manager). Needs a Tokio runtime.
    pub(super) fn connect_lazily(
        url: &ConnectionUrl,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, RedisError> {
        let client = redis::Client::open(url.expose()).map_err(RedisError)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(RedisError)?;
        Ok(Self {
            connection,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            timeout,
            skip_until: Mutex::new(None),
        })
    }

    /// A connection for other uses (the readiness check).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub(super) async fn check(
        &self,
        class: RouteClass,
        key: &RateLimitKey,
        limit: u32,
    ) -> Result<Decision, Unavailable> {
        if self.backing_off() {
            return Err(Unavailable);
        }
        let bucket = format!("{}{}:{}", self.prefix, class.as_str(), key.as_str());
        let interval_us = 60_000_000 / u64::from(limit);
        let mut connection = self.connection.clone();
        let call = async {
            self.script
                .key(&bucket)
                .arg(interval_us)
                .arg(limit)
                .invoke_async::<(u8, u32, u64, u64)>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((allowed, remaining, reset_us, retry_us))) => Ok(Decision {
                allowed: allowed == 1,
                limit,
                remaining,
                reset_after: Duration::from_micros(reset_us),
                retry_after: Duration::from_micros(retry_us),
            }),
            Ok(Err(error)) => {
                self.fail(&error.to_string());
                Err(Unavailable)
            }
            Err(_elapsed) => {
                self.fail("no answer within the backend timeout");
                Err(Unavailable)
            }
        }
    }

    fn backing_off(&self) -> bool {
        let mut skip = self.skip_until.lock().unwrap_or_else(|e| e.into_inner());
        match *skip {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *skip = None;
                false
            }
            None => false,
        }
    }

    fn fail(&self, reason: &str) {
        m::record_rate_limit_backend_error();
        *self.skip_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + BACKOFF);
        // One line per back-off period at most. Redis errors do not contain the password.
        tracing::warn!(
            reason,
            backoff_secs = BACKOFF.as_secs(),
            "Redis rate limiting failed; deciding in memory"
        );
    }
}
