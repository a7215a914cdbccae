//! The two wire protocols behind one interface.
//!
//! - Turborepo API v8: one artifact per task hash (`/v8/artifacts/{hash}?teamId=|slug=`), the
//!   entry (and its companion, if any) encoded by [`crate::bundle`]; `x-artifact-duration`
//!   carries the task's duration and `x-artifact-tag` its signature (over the whole artifact).
//! - Bazel HTTP cache: the entry (an "action result") under `/ac/{task hash}`, its blobs under
//!   `/cas/{sha256}` (content-addressed, so shared blobs upload once). The AC record is a small
//!   JSON envelope holding the entry and, with a key, its signature. Blobs are verified by
//!   sha256 against the signed entry, so the signature covers them too. Companions are not
//!   carried: the companion entry is uploaded under its own key as well, and fetched by it.
//!
//! Both also store "last run" records (the key manifest of the latest upload of each
//! package:task) under a hash derived from the task's name, for `why --remote`.

use serde::{Deserialize, Serialize};
use xtask_cache::EntryParts;
use xtask_util::is_sha256_hex;

use crate::bundle::{self, Bundle};
use crate::http::{Failure, Http, Method, Reply};
use crate::settings::{RemoteSettings, Team};
use crate::signature::{SignatureError, Signer};
use xtask_model::RemoteProtocol;

/// What a fetch found.
#[derive(Debug)]
pub(crate) enum Fetched {
    Miss,
    Found(Bundle, u64),
}

/// A fetch that did not produce a usable artifact.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The server failed (see [`Failure::fatal`]).
    Failure(Failure),
    /// The server answered, but the artifact cannot be trusted (bad signature, bad encoding).
    Untrusted(String),
}

impl From<Failure> for FetchError {
    fn from(failure: Failure) -> FetchError {
        FetchError::Failure(failure)
    }
}

pub(crate) struct Backend {
    http: Http,
    protocol: RemoteProtocol,
    team: Option<Team>,
    signer: Option<Signer>,
}

/// The AC record of the Bazel protocol.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    /// The entry JSON (or a last-run record), verbatim.
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

const ENVELOPE_FORMAT: &str = "xtask-remote-1";

impl Backend {
    pub fn new(settings: &RemoteSettings) -> Backend {
        Backend {
            http: Http::new(settings),
            protocol: settings.protocol,
            team: settings.team.clone(),
            signer: settings
                .signature_key
                .clone()
                .map(|key| Signer::new(key, Team::signing_id(settings.team.as_ref()))),
        }
    }

    pub fn server(&self) -> &str {
        &self.http.server
    }

    fn turbo_path(&self, hash: &str) -> String {
        match &self.team {
            Some(team) => format!("/v8/artifacts/{hash}?{}", team.query()),
            None => format!("/v8/artifacts/{hash}"),
        }
    }

    fn verify(&self, hash: &str, body: &[u8], tag: Option<&str>) -> Result<(), FetchError> {
        match &self.signer {
            None => Ok(()),
            Some(signer) => signer
                .verify(hash, body, tag)
                .map_err(|error: SignatureError| FetchError::Untrusted(error.to_string())),
        }
    }

    fn tag(&self, hash: &str, body: &[u8]) -> Option<String> {
        self.signer.as_ref().map(|signer| signer.tag(hash, body))
    }

    /// GET that maps 404 to `None` and other unexpected statuses to failures.
    fn get(&self, path: &str, label: &str) -> Result<Option<Reply>, Failure> {
        let reply = self.http.send(Method::Get, path, label, &[], None)?;
        match reply.status {
            200 => Ok(Some(reply)),
            404 => Ok(None),
            status => Err(self.http.status_failure(Method::Get, label, status)),
        }
    }

    fn put(
        &self,
        path: &str,
        label: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(), Failure> {
        let reply = self
            .http
            .send(Method::Put, path, label, headers, Some(body))?;
        match reply.status {
            200..=299 => Ok(()),
            status => Err(self.http.status_failure(Method::Put, label, status)),
        }
    }

    /// HEAD: `true` when present.
    fn exists(&self, path: &str, label: &str) -> Result<bool, Failure> {
        let reply = self.http.send(Method::Head, path, label, &[], None)?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(self.http.status_failure(Method::Head, label, status)),
        }
    }

    /// Downloads the entry of `task_hash`, checking its signature (the content checks are the
    /// local cache's import).
    pub fn fetch(&self, task_hash: &str) -> Result<Fetched, FetchError> {
        match self.protocol {
            RemoteProtocol::Turbo => {
                let label = format!("/v8/artifacts/{task_hash}");
                let Some(reply) = self.get(&self.turbo_path(task_hash), &label)? else {
                    return Ok(Fetched::Miss);
                };
                self.verify(task_hash, &reply.body, reply.header("x-artifact-tag"))?;
                let bundle = bundle::decode(&reply.body).map_err(|reason| {
                    FetchError::Untrusted(format!("the artifact is not an xtask entry: {reason}"))
                })?;
                Ok(Fetched::Found(bundle, reply.body.len() as u64))
            }
            RemoteProtocol::Bazel => {
                let Some(entry) = self.get_envelope(task_hash)? else {
                    return Ok(Fetched::Miss);
                };
                let blobs: BlobNames = serde_json::from_slice(&entry).map_err(|error| {
                    FetchError::Untrusted(format!(
                        "the action cache record is not an xtask entry: {error}"
                    ))
                })?;
                let mut bytes = entry.len() as u64;
                let mut fetch_blob = |sha256: &str| -> Result<Option<Vec<u8>>, FetchError> {
                    if !is_sha256_hex(sha256) {
                        return Err(FetchError::Untrusted(format!(
                            "invalid blob name `{sha256}`"
                        )));
                    }
                    let label = format!("/cas/{sha256}");
                    Ok(self.get(&label, &label)?.map(|reply| {
                        bytes += reply.body.len() as u64;
                        reply.body
                    }))
                };
                // An action result whose blobs are gone (evicted) is a miss, as in Bazel.
                let Some(archive) = fetch_blob(&blobs.archive.sha256)? else {
                    return Ok(Fetched::Miss);
                };
                let Some(log) = fetch_blob(&blobs.log.sha256)? else {
                    return Ok(Fetched::Miss);
                };
                Ok(Fetched::Found(
                    Bundle {
                        parts: EntryParts {
                            entry,
                            archive,
                            log,
                        },
                        companion: None,
                    },
                    bytes,
                ))
            }
        }
    }

    /// Uploads an entry, with `companion` inside its artifact where the protocol has one per
    /// entry (Turborepo); returns the bytes sent.
    pub fn upload(
        &self,
        task_hash: &str,
        parts: &EntryParts,
        companion: Option<&EntryParts>,
        duration_ms: u64,
    ) -> Result<u64, Failure> {
        match self.protocol {
            RemoteProtocol::Turbo => {
                let body = bundle::encode(parts, companion);
                let mut headers = vec![
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("x-artifact-duration", duration_ms.to_string()),
                ];
                if let Some(tag) = self.tag(task_hash, &body) {
                    headers.push(("x-artifact-tag", tag));
                }
                let label = format!("/v8/artifacts/{task_hash}");
                self.put(&self.turbo_path(task_hash), &label, &headers, &body)?;
                Ok(body.len() as u64)
            }
            RemoteProtocol::Bazel => {
                let blobs: BlobNames =
                    serde_json::from_slice(&parts.entry).map_err(|_| Failure {
                        server: self.http.server.clone(),
                        action: format!("PUT /ac/{task_hash}"),
                        kind: crate::http::FailureKind::Transport(
                            "the local entry does not parse".into(),
                        ),
                        fatal: false,
                    })?;
                let mut sent = 0;
                // Blobs first, the action cache record last: a reader never sees an entry whose
                // blobs are not there yet.
                for (sha256, bytes) in [
                    (&blobs.archive.sha256, &parts.archive),
                    (&blobs.log.sha256, &parts.log),
                ] {
                    let label = format!("/cas/{sha256}");
                    if !self.exists(&label, &label)? {
                        self.put(&label, &label, &[], bytes)?;
                        sent += bytes.len() as u64;
                    }
                }
                sent += self.put_envelope(task_hash, &parts.entry)?;
                Ok(sent)
            }
        }
    }

    fn get_envelope(&self, hash: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let label = format!("/ac/{hash}");
        let Some(reply) = self.get(&label, &label)? else {
            return Ok(None);
        };
        let envelope: Envelope = serde_json::from_slice(&reply.body).map_err(|error| {
            FetchError::Untrusted(format!(
                "the action cache record is not an xtask record: {error}"
            ))
        })?;
        if envelope.format != ENVELOPE_FORMAT {
            return Err(FetchError::Untrusted(format!(
                "unsupported record format `{}`",
                envelope.format
            )));
        }
        let body = envelope.body.into_bytes();
        self.verify(hash, &body, envelope.tag.as_deref())?;
        Ok(Some(body))
    }

    fn put_envelope(&self, hash: &str, body: &[u8]) -> Result<u64, Failure> {
        let envelope = Envelope {
            format: ENVELOPE_FORMAT.into(),
            body: String::from_utf8_lossy(body).into_owned(),
            tag: self.tag(hash, body),
        };
        let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
        let label = format!("/ac/{hash}");
        self.put(&label, &label, &[], &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Reads a small signed record stored under `key` (a sha256 hex).
    pub fn get_record(&self, key: &str) -> Result<Option<Vec<u8>>, FetchError> {
        match self.protocol {
            RemoteProtocol::Turbo => {
                let label = format!("/v8/artifacts/{key}");
                let Some(reply) = self.get(&self.turbo_path(key), &label)? else {
                    return Ok(None);
                };
                self.verify(key, &reply.body, reply.header("x-artifact-tag"))?;
                Ok(Some(reply.body))
            }
            RemoteProtocol::Bazel => self.get_envelope(key),
        }
    }

    /// Writes a small signed record under `key` (a sha256 hex).
    pub fn put_record(&self, key: &str, body: &[u8]) -> Result<u64, Failure> {
        match self.protocol {
            RemoteProtocol::Turbo => {
                let mut headers = vec![
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("x-artifact-duration", "0".to_string()),
                ];
                if let Some(tag) = self.tag(key, body) {
                    headers.push(("x-artifact-tag", tag));
                }
                let label = format!("/v8/artifacts/{key}");
                self.put(&self.turbo_path(key), &label, &headers, body)?;
                Ok(body.len() as u64)
            }
            RemoteProtocol::Bazel => self.put_envelope(key, body),
        }
    }

    /// Turborepo's `GET /v8/artifacts/status`: `Ok(status)` (`enabled`, `disabled`,
    /// `over_limit`, `paused`). For Bazel servers, a HEAD of an absent CAS blob (404 expected).
    pub fn status(&self) -> Result<String, Failure> {
        match self.protocol {
            RemoteProtocol::Turbo => {
                let path = match &self.team {
                    Some(team) => format!("/v8/artifacts/status?{}", team.query()),
                    None => "/v8/artifacts/status".to_string(),
                };
                let label = "/v8/artifacts/status";
                let reply = self.http.send(Method::Get, &path, label, &[], None)?;
                if reply.status != 200 {
                    return Err(self.http.status_failure(Method::Get, label, reply.status));
                }
                #[derive(Deserialize)]
                struct Status {
                    status: String,
                }
                serde_json::from_slice::<Status>(&reply.body)
                    .map(|s| s.status)
                    .map_err(|_| self.http.status_failure(Method::Get, label, 200))
            }
            RemoteProtocol::Bazel => {
                let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
                let label = format!("/cas/{empty}");
                self.exists(&label, &label).map(|found| {
                    if found {
                        "reachable (blob present)"
                    } else {
                        "reachable"
                    }
                    .to_string()
                })
            }
        }
    }
}

/// The two blob references of an entry JSON (the rest is checked by the cache's import).
#[derive(Deserialize)]
struct BlobNames {
    archive: BlobName,
    log: BlobName,
}

#[derive(Deserialize)]
struct BlobName {
    sha256: String,
}
