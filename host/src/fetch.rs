//! Fetching images by URL, with guards against server-side request forgery: http and https
//! only, every address the name resolves to checked before connecting (also after each
//! redirect, since every hop goes through the same resolver), few redirects, a size limit and
//! an overall deadline.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::api::error::{ApiError, ApiResult};
use crate::api::limits::MAX_IMAGE_BYTES;

/// How URLs are fetched.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Allow loopback, private, link-local and other non-public addresses (off by default).
    pub allow_private: bool,
    pub timeout: Duration,
    pub max_redirects: u32,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig { allow_private: false, timeout: Duration::from_secs(10), max_redirects: 3 }
    }
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

/// Resolves with the system resolver, then refuses the name if any address is not public.
#[derive(Debug)]
struct GuardResolver {
    inner: DefaultResolver,
    allow_private: bool,
}

impl Resolver for GuardResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if !self.allow_private
            && let Some(bad) = addrs.iter().find(|a| !is_public(a))
        {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{} resolves to {}, which is not a public address", uri.host().unwrap_or(""), bad.ip()),
            )));
        }
        Ok(addrs)
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast, unspecified or reserved).
pub fn is_public(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_unspecified()
                || ip.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(&SocketAddr::new(IpAddr::V4(v4), addr.port()));
            }
            let s = ip.segments();
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0xdb8
                || s[0] == 0x2001 && s[1] == 0
                || s[0] == 0x2002
                || s[0] == 0x64 && s[1] == 0xff9b
                || s[..6] == [0; 6])
        }
    }
}

impl Fetcher {
    pub fn new(config: &FetchConfig) -> Fetcher {
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .max_redirects(config.max_redirects)
            .http_status_as_error(false)
            // No proxy from the environment: every target address must pass the guard itself.
            .proxy(None)
            .user_agent(concat!("face-server/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver = GuardResolver { inner: DefaultResolver::default(), allow_private: config.allow_private };
        Fetcher { agent: ureq::Agent::with_parts(agent_config, DefaultConnector::default(), resolver) }
    }

    /// Downloads the image at `url`: at most 6 MB, http or https.
    pub async fn fetch(&self, url: &str) -> ApiResult<Vec<u8>> {
        let parsed: Uri = url.parse().map_err(|_| ApiError::invalid_url(format!("Invalid image URL: {url:?}.")))?;
        match parsed.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(ApiError::invalid_url(format!(
                    "Invalid image URL: {url:?}; only http and https are fetched."
                )));
            }
        }
        if parsed.host().is_none_or(str::is_empty) {
            return Err(ApiError::invalid_url(format!("Invalid image URL: {url:?} names no host.")));
        }
        let agent = self.agent.clone();
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || fetch_blocking(&agent, &url))
            .await
            .map_err(|e| ApiError::internal(format!("the download task failed: {e}")))?
    }
}

fn fetch_blocking(agent: &ureq::Agent, url: &str) -> ApiResult<Vec<u8>> {
    let download_error = |e: ureq::Error| {
        ApiError::invalid_url(format!("Invalid image URL or error downloading from target server: {e}"))
    };
    let mut response = agent.get(url).call().map_err(download_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ApiError::invalid_url(format!(
            "Invalid image URL or error downloading from target server. Remote server error returned: {status}"
        )));
    }
    match response.body_mut().with_config().limit(MAX_IMAGE_BYTES as u64 + 1).read_to_vec() {
        Ok(bytes) => Ok(bytes),
        Err(ureq::Error::BodyExceedsLimit(_)) => Err(ApiError::invalid_image_size(format!(
            "Image size is too big: the image at the URL is larger than {MAX_IMAGE_BYTES} bytes (6 MB)."
        ))),
        Err(e) => Err(download_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        let public = ["8.8.8.8:80", "[2606:4700::1111]:443", "[::ffff:8.8.8.8]:80"];
        let private = [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "172.16.0.1:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "0.0.0.0:80",
            "[::1]:80",
            "[fe80::1]:80",
            "[fd00::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::127.0.0.1]:80",
            "[2002:7f00:1::]:80",
            "[2001:0:4136:e378::1]:80",
        ];
        for a in public {
            assert!(is_public(&a.parse().unwrap()), "{a}");
        }
        for a in private {
            assert!(!is_public(&a.parse().unwrap()), "{a}");
        }
    }
}
