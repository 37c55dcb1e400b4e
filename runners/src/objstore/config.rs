//! Where an object-store artifact store is and how to sign in to it: the `artifacts:` block of
//! a runner in runners.yaml ([`ObjectStoreConfig`]), read into a checked [`Target`] (which
//! provider, bucket, prefix, endpoint, region), and the credentials taken from the usual
//! environment variables. Only S3 (and S3-compatible servers) is built today; a provider is
//! one arm of [`Provider`], so GCS and Azure slot in beside it.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use super::error::ObjectStoreError;

/// The `artifacts: { url, endpoint, region }` block of a runner: object storage both tuna and
/// the runner's machines reach, holding blobs at `PREFIX/cas/<blake3 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The server's base URL, for S3-compatible servers (MinIO, Ceph, moto, …): `https://…`,
    /// or `http://…` which is then allowed. Without one: AWS's endpoint for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region requests are signed for; without one, `AWS_REGION` or `AWS_DEFAULT_REGION`
    /// from the environment, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
}

/// Which service a store is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Provider {
    /// Amazon S3 or an S3-compatible server.
    S3 { region: String },
}

/// An [`ObjectStoreConfig`] checked and resolved against the environment.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub runner: String,
    pub provider: Provider,
    pub bucket: String,
    /// The folder under the bucket (empty for the bucket's root).
    pub prefix: Path,
    /// The base URL requests go to, for messages.
    pub endpoint: String,
    /// `s3://bucket/prefix`, for messages.
    pub url: String,
    /// Where the credentials come from, for messages about refused ones.
    pub credentials: Credentials,
}

/// The credentials found in the environment.
#[derive(Clone)]
pub(crate) enum Credentials {
    Keys {
        key_id: String,
        secret: String,
        token: Option<String>,
    },
    /// None set: the provider's own chain (instance metadata on a cloud VM) is asked.
    Ambient,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Keys { key_id, token, .. } => f
                .debug_struct("Keys")
                .field("key_id", key_id)
                .field("token", &token.as_ref().map(|_| "…"))
                .finish_non_exhaustive(),
            Credentials::Ambient => f.write_str("Ambient"),
        }
    }
}

/// How long a connection may take to open, and one request (one part of a transfer) to finish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

impl Target {
    /// Checks `cfg` (the runner `runner`'s) and reads the credentials through `env`.
    pub fn resolve(
        runner: &str,
        cfg: &ObjectStoreConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, ObjectStoreError> {
        let invalid = |reason: String| ObjectStoreError::Invalid {
            runner: runner.to_owned(),
            reason,
        };
        let (scheme, rest) = cfg.url.split_once("://").ok_or_else(|| {
            invalid(format!(
                "url `{}` is not an object-store URL: write s3://BUCKET/PREFIX",
                cfg.url
            ))
        })?;
        if scheme != "s3" {
            return Err(invalid(format!(
                "url `{}`: scheme `{scheme}` is not supported: only s3:// (Amazon S3 and \
                 S3-compatible servers) is",
                cfg.url
            )));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|why| invalid(format!("url `{}`: {why}", cfg.url)))?;
        let prefix = prefix.trim_end_matches('/');
        let prefix = Path::parse(prefix).map_err(|e| {
            invalid(format!(
                "url `{}`: the prefix `{prefix}` is not a usable object path: {e}",
                cfg.url
            ))
        })?;
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let region = nonempty(cfg.region.clone())
            .or_else(|| nonempty(env("AWS_REGION")))
            .or_else(|| nonempty(env("AWS_DEFAULT_REGION")))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = match &cfg.endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/');
                if !(e.starts_with("https://") || e.starts_with("http://"))
                    || e.split_once("://").is_none_or(|(_, host)| host.is_empty())
                {
                    return Err(invalid(format!(
                        "endpoint `{e}` is not a URL: write http://HOST:PORT or https://HOST"
                    )));
                }
                e.to_owned()
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let credentials = match (
            nonempty(env("AWS_ACCESS_KEY_ID")),
            nonempty(env("AWS_SECRET_ACCESS_KEY")),
        ) {
            (Some(key_id), Some(secret)) => Credentials::Keys {
                key_id,
                secret,
                token: nonempty(env("AWS_SESSION_TOKEN")),
            },
            (None, None) => Credentials::Ambient,
            (Some(_), None) => {
                return Err(invalid(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both in \
                     tuna's environment"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both in \
                     tuna's environment"
                        .into(),
                ));
            }
        };
        let url = if prefix.as_ref().is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        Ok(Target {
            runner: runner.to_owned(),
            provider: Provider::S3 { region },
            bucket: bucket.to_owned(),
            prefix,
            endpoint,
            url,
            credentials,
        })
    }

    /// A client for the store. `patient`: retries for minutes (transfers); otherwise it gives
    /// up after a few quick tries (checks bounded by a timeout, which say why at once).
    pub fn connect(&self, patient: bool) -> Result<Arc<dyn ObjectStore>, ObjectStoreError> {
        let retry = if patient {
            RetryConfig::default()
        } else {
            RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(50),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            }
        };
        let options = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        match &self.provider {
            Provider::S3 { region } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&self.bucket)
                    .with_region(region)
                    .with_endpoint(&self.endpoint)
                    .with_client_options(options)
                    .with_allow_http(self.endpoint.starts_with("http://"))
                    .with_retry(retry);
                if let Credentials::Keys {
                    key_id,
                    secret,
                    token,
                } = &self.credentials
                {
                    b = b.with_access_key_id(key_id).with_secret_access_key(secret);
                    if let Some(t) = token {
                        b = b.with_token(t);
                    }
                }
                let store = b.build().map_err(|e| ObjectStoreError::Invalid {
                    runner: self.runner.clone(),
                    reason: format!("{}: {e}", self.url),
                })?;
                Ok(Arc::new(store))
            }
        }
    }

    /// The object of blob `hex`.
    pub fn blob(&self, hex: &str) -> Path {
        self.cas().join(hex)
    }

    /// The folder of the blobs.
    pub fn cas(&self) -> Path {
        self.prefix.clone().join("cas")
    }

    /// The error of a request that got no answer within `timeout`.
    pub fn no_answer(&self, what: &str, timeout: Duration) -> ObjectStoreError {
        let mut detail = format!("{what} got no answer within {timeout:?}");
        if matches!(self.credentials, Credentials::Ambient) {
            detail.push_str(
                "; with no AWS_ACCESS_KEY_ID in tuna's environment, credentials were asked of \
                 this machine's metadata service, which may be what did not answer",
            );
        }
        ObjectStoreError::Unreachable {
            runner: self.runner.clone(),
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    /// What to do about refused credentials.
    pub fn credentials_fix(&self) -> String {
        let scope = format!("read and write {}", self.url);
        match self.credentials {
            Credentials::Keys { .. } => format!(
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for \
                 temporary keys) in tuna's environment: they must name keys allowed to {scope}"
            ),
            Credentials::Ambient => format!(
                "no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in tuna's environment, so the \
                 machine's own identity was used: set them to keys allowed to {scope}"
            ),
        }
    }
}

/// S3's bucket naming rules, the ones a typo breaks.
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket: write s3://BUCKET/PREFIX".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("bucket `{bucket}` must be 3 to 63 characters long"));
    }
    let ok = bucket
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    let edges = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !ok || !edges(bucket.as_bytes()[0]) || !edges(bucket.as_bytes()[bucket.len() - 1]) {
        return Err(format!(
            "bucket `{bucket}` is not a valid bucket name (lowercase letters, digits, `-` and \
             `.`, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ObjectStoreConfig {
        ObjectStoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
        }
    }

    fn keys(k: &str) -> Option<String> {
        match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI-example".into()),
            "AWS_DEFAULT_REGION" => Some("eu-west-3".into()),
            _ => None,
        }
    }

    fn error(url: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
        Target::resolve("ray1", &cfg(url), env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_url_gives_bucket_prefix_and_blob_names() {
        let t = Target::resolve("ray1", &cfg("s3://tuna-art/team/exp1/"), &keys).unwrap();
        assert_eq!(t.bucket, "tuna-art");
        assert_eq!(t.url, "s3://tuna-art/team/exp1");
        assert_eq!(
            t.provider,
            Provider::S3 {
                region: "eu-west-3".into()
            }
        );
        assert_eq!(t.endpoint, "https://s3.eu-west-3.amazonaws.com");
        let hex = "ab".repeat(32);
        assert_eq!(
            t.blob(&hex).as_ref(),
            format!("team/exp1/cas/{hex}").as_str()
        );
        let root = Target::resolve("ray1", &cfg("s3://tuna-art"), &keys).unwrap();
        assert_eq!(root.blob(&hex).as_ref(), format!("cas/{hex}").as_str());
        assert_eq!(root.url, "s3://tuna-art");
    }

    #[test]
    fn the_region_in_the_file_wins_over_the_environment() {
        let mut c = cfg("s3://tuna-art");
        c.region = Some("ap-south-1".into());
        c.endpoint = Some("http://127.0.0.1:9000/".into());
        let t = Target::resolve("ray1", &c, &keys).unwrap();
        assert_eq!(
            t.provider,
            Provider::S3 {
                region: "ap-south-1".into()
            }
        );
        assert_eq!(t.endpoint, "http://127.0.0.1:9000");
        t.connect(true).unwrap();
    }

    #[test]
    fn bad_urls_and_half_credentials_say_what_to_write() {
        let none = |_: &str| None;
        let e = error("bucket/prefix", &none);
        assert!(
            e.contains("runner `ray1`") && e.contains("s3://BUCKET/PREFIX"),
            "{e}"
        );
        let e = error("gs://bucket/prefix", &none);
        assert!(e.contains("scheme `gs` is not supported"), "{e}");
        let e = error("s3://Bad_Bucket/x", &none);
        assert!(e.contains("not a valid bucket name"), "{e}");
        let e = error("s3://ab", &none);
        assert!(e.contains("3 to 63"), "{e}");
        let e = error("s3://bucket/a//b", &none);
        assert!(e.contains("prefix `a//b`"), "{e}");
        let half = |k: &str| (k == "AWS_ACCESS_KEY_ID").then(|| "AKID".to_owned());
        let e = error("s3://bucket", &half);
        assert!(e.contains("AWS_SECRET_ACCESS_KEY is not"), "{e}");
        let mut c = cfg("s3://bucket");
        c.endpoint = Some("127.0.0.1:9000".into());
        let e = Target::resolve("ray1", &c, &none).unwrap_err().to_string();
        assert!(e.contains("endpoint `127.0.0.1:9000` is not a URL"), "{e}");
    }

    #[test]
    fn the_runners_yaml_block_refuses_unknown_keys() {
        let ok: ObjectStoreConfig =
            serde_json::from_str(r#"{"url": "s3://b-1/p", "endpoint": "http://h:1"}"#).unwrap();
        assert_eq!(ok.endpoint.as_deref(), Some("http://h:1"));
        let bad = serde_json::from_str::<ObjectStoreConfig>(r#"{"url": "s3://b-1", "bucket": 1}"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `bucket`")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let t = Target::resolve("ray1", &cfg("s3://tuna-art"), &keys).unwrap();
        let shown = format!("{t:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"),
            "{shown}"
        );
    }
}
