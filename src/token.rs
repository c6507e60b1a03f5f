//! `wharf token`: creates, lists and revokes Wharf tokens, bearer tokens `wharf-<id>.<secret>`
//! for a user and groups. Each is a Secret `kube-system/wharf-token-<id>` of type
//! `wharf.dev/token` holding the user, groups, expiration and the SHA-256 of the secret — never
//! the secret, which only `create` prints, once. Revoking a token is deleting its Secret.
//!
//! The cluster is found as kubectl finds it (see `wharf image`) and reached through the API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use wharf_control::auth::tokens::{TOKEN_NAMESPACE, TOKEN_SECRET_TYPE, TokenGrant, WharfToken, valid_token_id};

use crate::{functions, image};

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The cluster's kubeconfig (default: $KUBECONFIG, then the data dir's kubeconfig.yaml).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a bearer token for a user; prints it as the last line (it is shown only once).
    Create {
        /// The user the token authenticates as (required).
        #[arg(long, value_parser = non_empty)]
        user: Option<String>,
        /// A group of the user (repeatable).
        #[arg(long = "group", value_parser = group)]
        groups: Vec<String>,
        /// How long the token is valid, e.g. 24h, 90m (default: until revoked).
        #[arg(long, value_parser = crate::parse_duration)]
        ttl: Option<Duration>,
        /// What the token is for, shown by `list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens: ID, USER, GROUPS, EXPIRES (never their secrets).
    #[command(alias = "ls")]
    List,
    /// Revoke a token: it stops authenticating at once.
    #[command(alias = "delete")]
    Revoke {
        /// The token's id (the 6 characters after `wharf-`), or the whole token.
        id: String,
    },
}

fn non_empty(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() { Err("must not be empty".into()) } else { Ok(text.to_string()) }
}

fn group(text: &str) -> Result<String, String> {
    let text = non_empty(text)?;
    if text.contains(',') { Err(format!("{text:?}: a group name cannot contain ','")) } else { Ok(text) }
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let path = image::kubeconfig_path(args.kubeconfig);
    let secrets: Api<Secret> = Api::namespaced(functions::client(&path).await?, TOKEN_NAMESPACE);
    match args.command {
        TokenCommand::Create { user, groups, ttl, description } => {
            let Some(user) = user else {
                bail!("--user is required: wharf token create --user NAME [--group GROUP]... [--ttl DURATION]")
            };
            let expiration = match ttl {
                Some(ttl) if ttl.is_zero() => bail!("--ttl must be longer than 0s"),
                Some(ttl) => Some(jiff::Timestamp::now() + jiff::SignedDuration::try_from(ttl)?),
                None => None,
            };
            let grant = TokenGrant { user, groups, expiration, description, digest: None };
            create(&secrets, &grant).await
        }
        TokenCommand::List => list(&secrets).await,
        TokenCommand::Revoke { id } => revoke(&secrets, &id).await,
    }
}

async fn create(secrets: &Api<Secret>, grant: &TokenGrant) -> anyhow::Result<()> {
    // A fresh id that is taken is drawn again.
    for _ in 0..4 {
        let token = WharfToken::generate();
        let secret: Secret = serde_json::from_value(grant.to_secret(&token))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                let expires = grant.expiration.map_or_else(|| "never expires".to_string(), |e| format!("expires {e}"));
                eprintln!(
                    "token {} for user {} ({expires}); revoke it with: wharf token revoke {}",
                    token.id, grant.user, token.id
                );
                println!("{}", token.expose());
                return Ok(());
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(e).context("cannot create the token"),
        }
    }
    bail!("cannot find a free token id")
}

/// The rows of `list`, from token Secrets.
fn rows(secrets: &[Secret]) -> Vec<[String; 4]> {
    let mut rows = vec![["ID".to_string(), "USER".into(), "GROUPS".into(), "EXPIRES".into()]];
    for secret in secrets {
        let Ok(value) = serde_json::to_value(secret) else { continue };
        let Some(grant) = TokenGrant::from_secret(&value) else { continue };
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let id = name.strip_prefix(wharf_control::auth::tokens::TOKEN_SECRET_PREFIX).unwrap_or(name);
        let groups = if grant.groups.is_empty() { "<none>".into() } else { grant.groups.join(",") };
        let expires = match grant.expiration {
            None => "<never>".to_string(),
            Some(e) if grant.expired_at(jiff::Timestamp::now()) => format!("{e} (expired)"),
            Some(e) => e.to_string(),
        };
        rows.push([id.to_string(), grant.user, groups, expires]);
    }
    rows
}

async fn list(secrets: &Api<Secret>) -> anyhow::Result<()> {
    let listed = secrets.list(&ListParams::default()).await.context("cannot list the tokens")?;
    let tokens: Vec<Secret> =
        listed.items.into_iter().filter(|s| s.type_.as_deref() == Some(TOKEN_SECRET_TYPE)).collect();
    let rows = rows(&tokens);
    let widths: Vec<usize> = (0..4).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

async fn revoke(secrets: &Api<Secret>, id: &str) -> anyhow::Result<()> {
    let id = match WharfToken::parse(id) {
        Some(token) => token.id,
        None => id.trim().to_string(),
    };
    if !valid_token_id(&id) {
        bail!("{id:?} is not a token id (6 characters of a-z and 0-9, as `wharf token list` shows)");
    }
    let name = format!("{}{id}", wharf_control::auth::tokens::TOKEN_SECRET_PREFIX);
    let secret = match secrets.get(&name).await {
        Ok(secret) => secret,
        Err(kube::Error::Api(status)) if status.code == 404 => bail!("token {id} not found"),
        Err(e) => return Err(e).context(format!("cannot read token {id}")),
    };
    if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE) {
        bail!("token {id} not found (secret {TOKEN_NAMESPACE}/{name} is not a Wharf token)");
    }
    match secrets.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => bail!("token {id} not found"),
        Err(e) => return Err(e).context(format!("cannot revoke token {id}")),
    }
    println!("token {id} revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_ids_users_groups_and_expiry_never_secrets() {
        let token = WharfToken::generate();
        let grant = TokenGrant { user: "jane".into(), groups: vec!["dev".into(), "ops".into()], ..Default::default() };
        let secret: Secret = serde_json::from_value(grant.to_secret(&token)).unwrap();
        let rows = rows(&[secret]);
        assert_eq!(rows[1], [token.id.clone(), "jane".into(), "dev,ops".into(), "<never>".into()]);
        assert!(!format!("{rows:?}").contains(&token.secret));
    }

    #[test]
    fn flags_are_checked() {
        assert!(non_empty(" ").is_err());
        assert_eq!(group("dev").unwrap(), "dev");
        assert!(group("a,b").is_err());
    }
}
