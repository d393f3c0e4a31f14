//! Name resolution for real playback: hickory-resolver through a given server from a given source
//! address (the CNAME chain recorded), the system resolver (getaddrinfo: no chain), or fixed
//! addresses (`--resolve`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Resolves names, following and recording the CNAME chain.
pub struct Dns {
    resolver: Option<hickory_resolver::TokioResolver>,
    fixed: Option<Vec<IpAddr>>,
}

/// A resolution: the names walked and the addresses found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub chain: Vec<String>,
    pub addrs: Vec<IpAddr>,
}

impl Dns {
    /// A resolver asking `server` (UDP, then TCP) from `bind`, or the system resolver.
    pub fn new(server: Option<SocketAddr>, bind: Option<IpAddr>) -> Result<Self> {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        let Some(server) = server else {
            return Ok(Dns {
                resolver: None,
                fixed: None,
            });
        };
        let mut conns = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
        for c in &mut conns {
            c.port = server.port();
            c.bind_addr = bind.map(|ip| SocketAddr::new(ip, 0));
        }
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        ns.connections = conns;
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.cache_size = 0;
        let resolver = hickory_resolver::Resolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .context("cannot build the DNS resolver")?;
        Ok(Dns {
            resolver: Some(resolver),
            fixed: None,
        })
    }

    /// A "resolver" that always answers `addrs`.
    pub fn fixed(addrs: Vec<IpAddr>) -> Self {
        Dns {
            resolver: None,
            fixed: Some(addrs),
        }
    }

    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolved> {
        if let Some(addrs) = &self.fixed {
            if addrs.is_empty() {
                bail!("no addresses given for {host}");
            }
            return Ok(Resolved {
                chain: vec![host.to_string()],
                addrs: addrs.clone(),
            });
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Resolved {
                chain: vec![host.to_string()],
                addrs: vec![ip],
            });
        }
        match &self.resolver {
            Some(r) => {
                let lookup = r
                    .lookup_ip(host)
                    .await
                    .with_context(|| format!("DNS lookup of {host}"))?;
                let mut chain = vec![host.trim_end_matches('.').to_string()];
                for rec in lookup.as_lookup().answers() {
                    if let hickory_resolver::proto::rr::RData::CNAME(c) = &rec.data {
                        chain.push(c.0.to_string().trim_end_matches('.').to_string());
                    }
                }
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                if addrs.is_empty() {
                    bail!("DNS lookup of {host}: no addresses");
                }
                Ok(Resolved { chain, addrs })
            }
            None => {
                let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .with_context(|| format!("system lookup of {host}"))?
                    .map(|a| a.ip())
                    .collect();
                if addrs.is_empty() {
                    bail!("system lookup of {host}: no addresses");
                }
                Ok(Resolved {
                    chain: vec![host.to_string()],
                    addrs,
                })
            }
        }
    }
}
