//! The push channel's settings: FCM projects and APNs keys, in order, from
//! `NOTIFY_PUSH_PROVIDERS`.

use std::time::Duration;

use serde::Deserialize;

use notify_core::{Config, ConfigError};
use notify_deliver::{Secret, provider_list};

#[derive(Clone, Debug)]
pub struct PushConfig {
    pub providers: Vec<PushAccount>,
    pub timeout: Duration,
    /// Requests in flight per chunk.
    pub concurrency: usize,
}

/// One entry of `NOTIFY_PUSH_PROVIDERS`, tagged by `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PushAccount {
    Fcm(FcmAccount),
    Apns(ApnsAccount),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmAccount {
    #[serde(default = "fcm_name")]
    pub name: String,
    #[serde(default = "fcm_base_url")]
    pub base_url: String,
    /// The service-account key as Google issues it (JSON), or the path of its file.
    #[serde(default)]
    pub service_account: Option<ServiceAccountKey>,
    #[serde(default)]
    pub service_account_file: Option<String>,
}

/// The fields of a Google service-account key that signing in needs.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceAccountKey {
    pub project_id: String,
    pub client_email: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// PKCS#8 PEM.
    pub private_key: Secret,
    #[serde(default = "google_token_uri")]
    pub token_uri: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsAccount {
    #[serde(default = "apns_name")]
    pub name: String,
    /// `https://api.push.apple.com`, or `https://api.sandbox.push.apple.com` for development
    /// builds of the app.
    #[serde(default = "apns_base_url")]
    pub base_url: String,
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` signing key (PKCS#8 PEM), or the path of its file.
    #[serde(default)]
    pub private_key: Option<Secret>,
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The app's bundle id, sent as `apns-topic`.
    pub topic: String,
}

fn fcm_name() -> String {
    "fcm".into()
}

fn fcm_base_url() -> String {
    "https://fcm.googleapis.com".into()
}

fn google_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

fn apns_name() -> String {
    "apns".into()
}

fn apns_base_url() -> String {
    "https://api.push.apple.com".into()
}

impl PushConfig {
    pub fn from_env(config: &Config) -> Result<PushConfig, ConfigError> {
        Self::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<PushConfig, ConfigError> {
        Ok(PushConfig {
            providers: provider_list(lookup, "NOTIFY_PUSH_PROVIDERS")?,
            timeout: config.provider_timeout,
            concurrency: 16,
        })
    }
}

impl FcmAccount {
    /// The key given inline, or read from its file.
    pub fn key(&self) -> anyhow::Result<ServiceAccountKey> {
        match (&self.service_account, &self.service_account_file) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("FCM provider `{}`: cannot read {path}: {e}", self.name)
                })?;
                serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "FCM provider `{}`: {path} is not a service-account key (line {}, \
                         column {})",
                        self.name,
                        e.line(),
                        e.column()
                    )
                })
            }
            (None, None) => anyhow::bail!(
                "FCM provider `{}` needs `service_account` or `service_account_file`",
                self.name
            ),
        }
    }
}

impl ApnsAccount {
    pub fn key_pem(&self) -> anyhow::Result<Secret> {
        match (&self.private_key, &self.private_key_file) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(path)) => std::fs::read_to_string(path).map(Secret::new).map_err(|e| {
                anyhow::anyhow!("APNs provider `{}`: cannot read {path}: {e}", self.name)
            }),
            (None, None) => anyhow::bail!(
                "APNs provider `{}` needs `private_key` or `private_key_file`",
                self.name
            ),
        }
    }
}
