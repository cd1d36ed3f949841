//! URL previews: fetch a page for a client, read its OpenGraph tags and `<title>`.
//!
//! The homeserver fetching arbitrary URLs on behalf of users is a server-side request forgery
//! hazard: a URL can name `http://127.0.0.1:5432/`, a cloud metadata address, or a hostname whose
//! DNS answer points inside the network (and changes between a check and the connection: DNS
//! rebinding). So the check is done where the connection is made: reqwest resolves names through
//! [`FilteringResolver`], which drops every blacklisted address, and connects only to what is
//! left; IP-literal hosts (which skip the resolver) are checked before each request; and redirects
//! are followed by hand, so every hop goes through the same checks.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect::Policy,
};
use serde_json::{Map, Value};

/// A CIDR range, e.g. `10.0.0.0/8` or `fe80::/10`; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `addr/prefix` or a bare address; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP range such as 10.0.0.0/8 or fe80::/10"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The ranges Synapse's sample config lists, plus "this network", CGNAT and IPv6's unspecified
/// address: nothing a public web page lives on.
const DEFAULT_BLACKLIST: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
];

/// Addresses previews may not reach.
#[derive(Clone, Debug)]
pub struct Blacklist(Arc<Vec<IpRange>>);

impl Blacklist {
    /// The configured list (already validated), or the default when the key is absent.
    pub fn new(configured: Option<&[String]>) -> Self {
        let ranges = match configured {
            Some(list) => list.iter().filter_map(|r| IpRange::parse(r).ok()).collect(),
            None => DEFAULT_BLACKLIST
                .iter()
                .map(|r| IpRange::parse(r).expect("static ranges parse"))
                .collect(),
        };
        Self(Arc::new(ranges))
    }

    /// Whether `ip` is blocked. IPv4-mapped and -compatible IPv6 addresses (`::ffff:127.0.0.1`)
    /// are checked as the IPv4 address they reach.
    pub fn blocks(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|r| r.contains(ip) || v4.is_some_and(|v4| r.contains(v4)))
    }
}

/// The error the resolver raises, found again in reqwest's error chain to tell the client why.
#[derive(Debug, thiserror::Error)]
#[error("every address of {0} is in url_preview_ip_range_blacklist")]
struct Blocked(String);

/// Resolves with the system resolver and keeps only addresses outside the blacklist; reqwest then
/// connects to exactly these addresses, so what was checked is what is reached.
struct FilteringResolver {
    blacklist: Blacklist,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let blacklist = self.blacklist.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !blacklist.blocks(a.ip()))
                .collect();
            if addrs.is_empty() {
                tracing::warn!(%host, "URL preview refused: every address is blacklisted");
                return Err(Box::new(Blocked(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreviewError {
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    BadUrl(String),
    #[error("fetching the URL failed: {0}")]
    Fetch(String),
    #[error("the URL answered HTTP {0}")]
    Status(u16),
    #[error("the content is larger than {0} bytes")]
    TooLarge(usize),
}

/// A fetched resource.
pub(crate) struct Fetched {
    pub(crate) url: Url,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

const MAX_REDIRECTS: usize = 5;

/// Fetches URLs for previews, with the blacklist enforced at connection time.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    blacklist: Blacklist,
}

impl Fetcher {
    pub(crate) fn new(blacklist: Blacklist) -> Self {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(FilteringResolver {
                blacklist: blacklist.clone(),
            }))
            .redirect(Policy::none())
            // A proxy would make the connection to an address we never checked.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("Causeway URL preview (Matrix homeserver)")
            .build()
            .expect("a client with static settings builds");
        Self { client, blacklist }
    }

    /// GETs `url`, following up to five redirects, each hop checked; reads at most `max` bytes.
    pub(crate) async fn fetch(&self, url: &str, max: usize) -> Result<Fetched, PreviewError> {
        let mut url =
            Url::parse(url).map_err(|e| PreviewError::BadUrl(format!("invalid URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            self.check(&url)?;
            let mut response = self
                .client
                .get(url.clone())
                .header(
                    "accept",
                    "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.5",
                )
                .send()
                .await
                .map_err(|e| self.explain(e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(PreviewError::Status(status.as_u16()))?;
                url = url
                    .join(location)
                    .map_err(|e| PreviewError::BadUrl(format!("bad redirect: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(PreviewError::Status(status.as_u16()));
            }
            if response.content_length().is_some_and(|l| l > max as u64) {
                return Err(PreviewError::TooLarge(max));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.explain(e))? {
                if body.len() + chunk.len() > max {
                    return Err(PreviewError::TooLarge(max));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Fetched {
                url,
                content_type,
                body,
            });
        }
        Err(PreviewError::Fetch(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Checks what the resolver cannot see: the scheme, and a host that is an IP literal.
    fn check(&self, url: &Url) -> Result<(), PreviewError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PreviewError::BadUrl(format!(
                "only http and https URLs can be previewed, not {}",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(PreviewError::BadUrl("the URL has no host".to_owned())),
        };
        if self.blacklist.blocks(ip) {
            tracing::warn!(%ip, "URL preview refused: address is blacklisted");
            return Err(PreviewError::Blocked(format!(
                "IP address {ip} is in url_preview_ip_range_blacklist"
            )));
        }
        Ok(())
    }

    fn explain(&self, err: reqwest::Error) -> PreviewError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(blocked) = e.downcast_ref::<Blocked>() {
                return PreviewError::Blocked(blocked.to_string());
            }
            source = e.source();
        }
        PreviewError::Fetch(err.without_url().to_string())
    }
}

/// The OpenGraph properties of an HTML page: every `og:*` meta tag, with `<title>` and the
/// description meta tag standing in for missing `og:title` and `og:description`. `og:image` is
/// made absolute against `base`.
pub(crate) fn opengraph(html: &str, base: &Url) -> Map<String, Value> {
    let mut og = Map::new();
    let Ok(dom) = tl::parse(html, tl::ParserOptions::default()) else {
        return og;
    };
    let parser = dom.parser();
    let mut description = None;
    for handle in dom.query_selector("meta").into_iter().flatten() {
        let Some(tag) = handle.get(parser).and_then(|n| n.as_tag()) else {
            continue;
        };
        let attrs = tag.attributes();
        let attr = |name: &str| {
            attrs
                .get(name)
                .flatten()
                .map(|b| decode_entities(&b.as_utf8_str()))
        };
        let Some(content) = attr("content") else {
            continue;
        };
        let key = attr("property")
            .or_else(|| attr("name"))
            .unwrap_or_default();
        if key.starts_with("og:") && !og.contains_key(&key) && og.len() < 50 {
            og.insert(key, Value::String(truncate(content, 1000)));
        } else if key.eq_ignore_ascii_case("description") && description.is_none() {
            description = Some(truncate(content, 1000));
        }
    }
    if !og.contains_key("og:title")
        && let Some(title) = dom
            .query_selector("title")
            .into_iter()
            .flatten()
            .next()
            .and_then(|h| h.get(parser))
            .map(|n| decode_entities(n.inner_text(parser).trim()))
            .filter(|t| !t.is_empty())
    {
        og.insert("og:title".to_owned(), Value::String(truncate(title, 1000)));
    }
    if !og.contains_key("og:description")
        && let Some(d) = description
    {
        og.insert("og:description".to_owned(), Value::String(d));
    }
    if let Some(Value::String(image)) = og.get("og:image").cloned() {
        match base.join(&image) {
            Ok(abs) => og.insert("og:image".to_owned(), Value::String(abs.to_string())),
            Err(_) => og.remove("og:image"),
        };
    }
    og
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The entities pages really use in titles and meta tags; the parser leaves them encoded.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_private_by_default(ip: IpAddr) -> bool {
        Blacklist::new(None).blocks(ip)
    }

    #[test]
    fn the_default_blacklist_covers_inside_addresses_and_not_public_ones() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_private_by_default(ip.parse().unwrap()),
                "{ip} must be blocked"
            );
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(
                !is_private_by_default(ip.parse().unwrap()),
                "{ip} is public"
            );
        }
        assert!(!Blacklist::new(Some(&[])).blocks("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ranges_parse_with_and_without_prefix() {
        assert!(
            IpRange::parse("10.0.0.0/8")
                .unwrap()
                .contains("10.255.0.1".parse().unwrap())
        );
        assert!(
            IpRange::parse("1.2.3.4")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(
            !IpRange::parse("1.2.3.4")
                .unwrap()
                .contains("1.2.3.5".parse().unwrap())
        );
        assert!(
            IpRange::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("example.org/8").is_err());
    }

    #[test]
    fn opengraph_reads_og_tags_then_title_and_description() {
        let base = Url::parse("https://example.org/blog/post").unwrap();
        let og = opengraph(
            r#"<html><head><title>Fallback &amp; title</title>
            <meta property="og:description" content="A &quot;great&quot; post">
            <meta property="og:image" content="/img/a.png">
            <meta name="description" content="ignored, og wins">
            </head><body>hi</body></html>"#,
            &base,
        );
        assert_eq!(og["og:title"], "Fallback & title");
        assert_eq!(og["og:description"], "A \"great\" post");
        assert_eq!(og["og:image"], "https://example.org/img/a.png");
    }
}
