//! Pushing an OCI layout's image to a registry with the OCI distribution API over ureq
//! (rustls): `HEAD` each blob and skip those already there, monolithic upload (`POST` then
//! `PUT ?digest=`), then `PUT` the manifest by tag. Authentication follows the registry's
//! `WWW-Authenticate` challenge: Basic, or Bearer with a token fetched from the challenge's
//! realm (with Basic credentials when given). Credentials come from the environment only
//! (`XTASK_REGISTRY_USERNAME`, `XTASK_REGISTRY_PASSWORD`) and never appear in output or errors.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use oci_spec::image::{ImageIndex, ImageManifest};
use xtask_engine::CliError;
use xtask_engine::report::Reporter;

use crate::oci::{REF_NAME, sha256_digest};

/// Environment variable holding the registry user name.
pub const USERNAME_VAR: &str = "XTASK_REGISTRY_USERNAME";
/// Environment variable holding the registry password or token.
pub const PASSWORD_VAR: &str = "XTASK_REGISTRY_PASSWORD";

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// What `HEAD` of a manifest accepts: the OCI manifest pushes write, and Docker's v2 (a
/// registry answers 404 for a manifest type the client does not accept).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Registry credentials (from the environment). `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    pub fn from_env() -> Credentials {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Credentials {
            username: read(USERNAME_VAR),
            password: read(PASSWORD_VAR),
        }
    }

    fn basic(&self) -> Option<String> {
        let username = self.username.as_deref()?;
        let password = self.password.as_deref().unwrap_or_default();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Some(format!("Basic {encoded}"))
    }
}

/// Where to push: `http(s)://host[:port]` and the repository name inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// `http://127.0.0.1:5000` (no trailing slash).
    pub base_url: String,
    /// `host[:port]` as written in image references.
    pub host: String,
    /// `namespace/app` or `app`.
    pub name: String,
}

impl PushTarget {
    /// Parses `[http://|https://]HOST[:PORT][/NAMESPACE]`; loopback hosts default to http,
    /// others to https.
    pub fn parse(registry: &str, app: &str) -> anyhow::Result<PushTarget> {
        let (scheme, rest) = match registry.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) => (Some(scheme), rest),
            Some((scheme, _)) => {
                return Err(CliError::config(format!(
                    "--push: unsupported scheme {scheme:?} (http or https)"
                ))
                .into());
            }
            None => (None, registry),
        };
        let rest = rest.trim_end_matches('/');
        let (host, namespace) = match rest.split_once('/') {
            Some((host, namespace)) => (host, Some(namespace)),
            None => (rest, None),
        };
        let valid_host = !host.is_empty()
            && !host.contains('@')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        let valid_namespace = namespace.is_none_or(|n| {
            !n.is_empty()
                && n.split('/').all(|part| {
                    !part.is_empty()
                        && part.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
                        })
                })
        });
        if !valid_host || !valid_namespace {
            return Err(CliError::config(format!(
                "--push: {registry:?} is not HOST[:PORT][/NAMESPACE]"
            ))
            .into());
        }
        let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]");
        let scheme = scheme.unwrap_or(if loopback { "http" } else { "https" });
        Ok(PushTarget {
            base_url: format!("{scheme}://{host}"),
            host: host.to_string(),
            name: match namespace {
                Some(namespace) => format!("{namespace}/{app}"),
                None => app.to_string(),
            },
        })
    }

    /// `host[:port]/name`.
    pub fn repository_reference(&self) -> String {
        format!("{}/{}", self.host, self.name)
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:<hex>` of the manifest, as the registry confirmed it.
    pub digest: String,
    pub uploaded: usize,
    pub skipped: usize,
}

/// Pushes the image tagged `tag` in the OCI layout at `layout` to `target`.
pub fn push_layout(
    layout: &Path,
    tag: &str,
    target: &PushTarget,
    credentials: &Credentials,
    reporter: &Reporter,
) -> anyhow::Result<Pushed> {
    let index_path = layout.join("index.json");
    let index: ImageIndex = serde_json::from_slice(
        &std::fs::read(&index_path)
            .with_context(|| format!("failed to read `{}`", index_path.display()))?,
    )
    .with_context(|| format!("`{}` is not an OCI image index", index_path.display()))?;
    let descriptor = index
        .manifests()
        .iter()
        .find(|m| {
            m.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|t| t == tag)
        })
        .with_context(|| format!("no image tagged {tag:?} in `{}`", index_path.display()))?;
    let manifest_digest = descriptor.digest().to_string();
    let manifest_bytes = read_blob(layout, &manifest_digest)?;
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("blob {manifest_digest} is not an image manifest"))?;

    let mut session = Session::new(target, credentials.clone());
    let mut blobs = vec![manifest.config().digest().to_string()];
    blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
    let (mut uploaded, mut skipped) = (0, 0);
    for digest in &blobs {
        let url = format!("{}/v2/{}/blobs/{digest}", target.base_url, target.name);
        let response = session.send("HEAD", &url, None, &[])?;
        if response.status == 200 {
            skipped += 1;
            reporter.line(&format!("  {digest}: already in the registry"));
            continue;
        }
        let bytes = read_blob(layout, digest)?;
        session.upload_blob(digest, &bytes)?;
        uploaded += 1;
        reporter.line(&format!("  {digest}: uploaded ({} bytes)", bytes.len()));
    }
    let url = format!("{}/v2/{}/manifests/{tag}", target.base_url, target.name);
    let response = session.send(
        "PUT",
        &url,
        Some(&manifest_bytes),
        &[("Content-Type", MANIFEST_MEDIA_TYPE)],
    )?;
    if response.status != 201 {
        bail!(
            "PUT {url} answered {}: {}",
            response.status,
            response.body.trim()
        );
    }
    let confirmed = response
        .digest
        .clone()
        .unwrap_or_else(|| sha256_digest(&manifest_bytes));
    anyhow::ensure!(
        confirmed == manifest_digest,
        "the registry stored manifest {confirmed}, not {manifest_digest}"
    );
    Ok(Pushed {
        digest: confirmed,
        uploaded,
        skipped,
    })
}

/// The digest of the manifest the registry holds for `tag` of `target`: `None` when the
/// registry has no such tag (404). A resumed release asks before pushing, so a push whose
/// effect happened but whose record did not is recognised rather than repeated.
pub fn remote_manifest_digest(
    target: &PushTarget,
    tag: &str,
    credentials: &Credentials,
) -> anyhow::Result<Option<String>> {
    let mut session = Session::new(target, credentials.clone());
    let url = format!("{}/v2/{}/manifests/{tag}", target.base_url, target.name);
    let accept = [("Accept", MANIFEST_ACCEPT)];
    let response = session.send("HEAD", &url, None, &accept)?;
    match response.status {
        404 => Ok(None),
        200 => match response.digest {
            Some(digest) => Ok(Some(digest)),
            None => {
                // No Docker-Content-Digest header: digest the manifest itself.
                let full = session.send("GET", &url, None, &accept)?;
                anyhow::ensure!(full.status == 200, "GET {url} answered {}", full.status);
                Ok(Some(sha256_digest(full.body.as_bytes())))
            }
        },
        status => bail!("HEAD {url} answered {status}"),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="...",service="...",scope="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut values = std::collections::BTreeMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        values.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: values.remove("realm")?,
            service: values.remove("service"),
            scope: values.remove("scope"),
        }),
        _ => None,
    }
}

struct Reply {
    status: u16,
    location: Option<String>,
    digest: Option<String>,
    challenge: Option<String>,
    body: String,
}

/// One registry conversation: the agent and the Authorization value that worked.
struct Session<'a> {
    agent: ureq::Agent,
    target: &'a PushTarget,
    credentials: Credentials,
    authorization: Option<String>,
}

impl<'a> Session<'a> {
    fn new(target: &'a PushTarget, credentials: Credentials) -> Session<'a> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_global(Some(Duration::from_secs(300)))
            .build();
        Session {
            agent: ureq::Agent::new_with_config(config),
            target,
            credentials,
            authorization: None,
        }
    }

    /// Sends a request; on 401, authenticates as the challenge says and retries once.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let reply = self.send_once(method, url, body, headers)?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let challenge = reply
            .challenge
            .as_deref()
            .and_then(parse_challenge)
            .with_context(|| format!("{method} {url} answered 401 without a usable challenge"))?;
        self.authorization = Some(self.authenticate(&challenge)?);
        let retried = self.send_once(method, url, body, headers)?;
        if retried.status == 401 || retried.status == 403 {
            bail!(
                "{method} {url}: the registry refused the credentials from {USERNAME_VAR}/{PASSWORD_VAR} ({})",
                retried.status
            );
        }
        Ok(retried)
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.unwrap_or_default().to_vec();
        if method == "PUT" || method == "POST" {
            request = request.header("Content-Length", body.len());
        }
        let request = request
            .body(body)
            .with_context(|| format!("invalid request {method} {url}"))?;
        let mut response = self
            .agent
            .run(request)
            .with_context(|| format!("{method} {url} failed"))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = header("location");
        let digest = header("docker-content-digest");
        let challenge = header("www-authenticate");
        let status = response.status().as_u16();
        let body = if method == "HEAD" {
            String::new()
        } else {
            response.body_mut().read_to_string().unwrap_or_default()
        };
        Ok(Reply {
            status,
            location,
            digest,
            challenge,
            body,
        })
    }

    fn authenticate(&self, challenge: &Challenge) -> anyhow::Result<String> {
        match challenge {
            Challenge::Basic => self.credentials.basic().with_context(|| {
                format!("the registry asks for credentials: set {USERNAME_VAR} and {PASSWORD_VAR}")
            }),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull,push", self.target.name));
                let mut url = format!("{realm}?scope={}", query_escape(&scope));
                if let Some(service) = service {
                    url.push_str(&format!("&service={}", query_escape(service)));
                }
                let mut request = self.agent.get(&url);
                if let Some(basic) = self.credentials.basic() {
                    request = request.header("Authorization", basic);
                }
                let mut response = request
                    .call()
                    .with_context(|| format!("GET {realm} (token) failed"))?;
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                if status != 200 {
                    bail!("the token service {realm} answered {status}");
                }
                let json: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("the token service {realm} sent no JSON"))?;
                let token = json
                    .get("token")
                    .or_else(|| json.get("access_token"))
                    .and_then(|t| t.as_str())
                    .with_context(|| format!("the token service {realm} sent no token"))?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Monolithic upload: POST to open an upload session, PUT the bytes with `?digest=`.
    fn upload_blob(&mut self, digest: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.target.base_url, self.target.name
        );
        let opened = self.send("POST", &url, Some(&[]), &[])?;
        if opened.status != 202 {
            bail!(
                "POST {url} answered {}: {}",
                opened.status,
                opened.body.trim()
            );
        }
        let location = opened
            .location
            .with_context(|| format!("POST {url} gave no upload Location"))?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.target.base_url)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={}", query_escape(digest));
        let done = self.send(
            "PUT",
            &put_url,
            Some(bytes),
            &[("Content-Type", "application/octet-stream")],
        )?;
        if done.status != 201 {
            bail!(
                "uploading {digest} answered {}: {}",
                done.status,
                done.body.trim()
            );
        }
        Ok(())
    }
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_blob(layout: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest {digest:?}"))?;
    let path = layout.join("blobs").join("sha256").join(hex);
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
    anyhow::ensure!(
        sha256_digest(&bytes) == digest,
        "`{}` does not match its digest",
        path.display()
    );
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:api:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:api:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }

    #[test]
    fn targets_parse_with_loopback_defaulting_to_http() {
        let local = PushTarget::parse("127.0.0.1:5000", "api").unwrap();
        assert_eq!(local.base_url, "http://127.0.0.1:5000");
        assert_eq!(local.repository_reference(), "127.0.0.1:5000/api");
        let remote = PushTarget::parse("ghcr.io/team/sub", "api").unwrap();
        assert_eq!(remote.base_url, "https://ghcr.io");
        assert_eq!(remote.name, "team/sub/api");
        assert!(PushTarget::parse("ftp://x", "api").is_err());
        assert!(PushTarget::parse("user:pw@host", "api").is_err());
        assert!(PushTarget::parse("host/Upper", "api").is_err());
    }

    #[test]
    fn credentials_never_show_the_password() {
        let credentials = Credentials {
            username: Some("me".into()),
            password: Some("s3cret".into()),
        };
        assert!(!format!("{credentials:?}").contains("s3cret"));
        assert_eq!(credentials.basic().unwrap(), "Basic bWU6czNjcmV0");
    }
}
