//! The preview origin: one host per project (`{id}.<suffix>`), so that each preview is an
//! origin of its own, never the API's.

use uuid::Uuid;

/// The placeholder for the project's id in [`PreviewOrigin`] templates.
pub const ID: &str = "{id}";
/// The placeholder for the preview listener's port.
pub const PORT: &str = "{port}";

/// Where owners reach previews: `scheme://{id}.suffix[:port]`.
///
/// ```
/// use samokoder_server::generation::preview_origin::PreviewOrigin;
///
/// let origin = PreviewOrigin::parse("https://{id}.preview.example.test", 8001).unwrap();
/// let id = uuid::Uuid::nil();
/// assert_eq!(origin.url(id), format!("https://{id}.preview.example.test"));
/// assert_eq!(origin.project(&format!("{id}.preview.example.test:443")), Some(id));
/// assert_eq!(origin.project("preview.example.test"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewOrigin {
    scheme: &'static str,
    /// The host after the id's label, with its leading dot (`.localhost`).
    suffix: String,
    port: Option<u16>,
}

impl PreviewOrigin {
    /// Parses a template such as `http://{id}.localhost:{port}`; `{port}` becomes
    /// `listener_port`.
    pub fn parse(template: &str, listener_port: u16) -> Result<Self, String> {
        let template = template.trim().trim_end_matches('/');
        let (scheme, rest) = if let Some(rest) = template.strip_prefix("https://") {
            ("https", rest)
        } else if let Some(rest) = template.strip_prefix("http://") {
            ("http", rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err("must be an origin: scheme, host and port, no path".into());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, PORT)) => (host, Some(listener_port)),
            Some((host, port)) => (
                host,
                Some(
                    port.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or("the port is not a number from 1 to 65535")?,
                ),
            ),
            None => (rest, None),
        };
        let suffix = host
            .strip_prefix(ID)
            .filter(|s| s.starts_with('.') && s.len() > 1)
            .ok_or("the host must start with `{id}.`: one host per project")?
            .to_ascii_lowercase();
        let valid = suffix[1..].split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !valid {
            return Err("the host after `{id}.` is not a domain name".into());
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        Ok(Self {
            scheme,
            suffix,
            port: port.filter(|p| *p != default_port),
        })
    }

    /// The origin of `project`'s preview.
    pub fn url(&self, project: Uuid) -> String {
        match self.port {
            Some(port) => format!("{}://{project}{}:{port}", self.scheme, self.suffix),
            None => format!("{}://{project}{}", self.scheme, self.suffix),
        }
    }

    /// The project a request's `Host` names, if it is one of ours.
    pub fn project(&self, host: &str) -> Option<Uuid> {
        let host = host.trim().to_ascii_lowercase();
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => host,
        };
        let label = host.strip_suffix(self.suffix.as_str())?;
        // The canonical hyphenated form only: one spelling per origin.
        let id = Uuid::try_parse(label).ok()?;
        (id.hyphenated().to_string() == label).then_some(id)
    }

    /// Whether browsers reach it over TLS (its cookie is then `Secure`).
    pub fn is_secure(&self) -> bool {
        self.scheme == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_with_their_port() {
        let dev = PreviewOrigin::parse("http://{id}.localhost:{port}", 8001).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(dev.url(id), format!("http://{id}.localhost:8001"));
        assert_eq!(dev.project(&format!("{id}.localhost:8001")), Some(id));
        assert_eq!(dev.project(&format!("{id}.LOCALHOST")), Some(id));
        assert!(!dev.is_secure());
        let prod = PreviewOrigin::parse("https://{id}.preview.example.test:443/", 1).unwrap();
        assert_eq!(prod.url(id), format!("https://{id}.preview.example.test"));
        assert!(prod.is_secure());
    }

    #[test]
    fn only_our_hosts_name_a_project() {
        let origin = PreviewOrigin::parse("http://{id}.localhost:8001", 0).unwrap();
        let id = Uuid::now_v7();
        for host in [
            "localhost".to_owned(),
            format!("{id}.evil.test"),
            format!("x.{id}.localhost"),
            format!("{}.localhost", id.simple()),
            "127.0.0.1:8001".to_owned(),
        ] {
            assert_eq!(origin.project(&host), None, "{host}");
        }
    }

    #[test]
    fn bad_templates_say_why() {
        for (template, why) in [
            ("ftp://{id}.x", "http"),
            ("http://x.localhost", "{id}."),
            ("http://{id}localhost", "{id}."),
            ("http://{id}.", "{id}."),
            ("http://{id}.a b", "domain"),
            ("http://{id}.localhost/app", "no path"),
            ("http://{id}.localhost:0", "port"),
        ] {
            let err = PreviewOrigin::parse(template, 8001).unwrap_err();
            assert!(err.contains(why), "{template}: {err}");
        }
    }
}
