//! DNS wire format on the answer path: a strict, allocation-free parser for queries (header, one
//! question, EDNS OPT with Client Subnet validation per RFC 7871) and a writer that lays out a
//! response from precomputed records with name compression against the question.
//!
//! The precomputed record data comes from `zone` (built at configuration time from names,
//! addresses and SOA fields); hickory-proto decodes every response in the tests and carries the
//! TCP transport. This module only moves bytes, so that the hot path neither allocates nor locks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types the router knows by number.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Response codes, including the extended BADVERS (which needs EDNS to carry its high bits).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

/// The class IN.
pub const CLASS_IN: u16 = 1;
/// EDNS option code of Client Subnet.
pub const EDNS_ECS: u16 = 8;
/// Largest wire-format name.
pub const MAX_NAME: usize = 255;

/// An EDNS Client Subnet option as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// 1 (IPv4) or 2 (IPv6).
    pub family: u16,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
    /// The address, zero beyond the source prefix.
    pub addr: IpAddr,
}

/// The EDNS OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub version: u8,
    pub udp_size: u16,
    pub dnssec_ok: bool,
    pub ecs: Option<Ecs>,
}

/// A lowercase wire-format name held inline.
#[derive(Clone, Copy)]
pub struct NameBuf {
    bytes: [u8; MAX_NAME],
    len: u8,
}

impl NameBuf {
    fn new() -> Self {
        NameBuf {
            bytes: [0; MAX_NAME],
            len: 0,
        }
    }
    /// The name in lowercase wire format, ending with the root label.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&name_to_string(self.as_slice()))
    }
}

/// A parsed query. Borrows the question bytes from the packet so they are echoed as sent
/// (case preserved).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub id: u16,
    /// Second header word as received (opcode, RD, CD, ...).
    pub flags: u16,
    /// The question as it appeared in the packet: name, type, class.
    pub question: &'a [u8],
    pub qname: NameBuf,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query<'_> {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }
}

/// What the parser made of a packet.
// The query variant holds its name inline on purpose: boxing it would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A well-formed standard query.
    Query(Query<'a>),
    /// An opcode other than QUERY: answer NOTIMP.
    NotImp {
        id: u16,
        flags: u16,
        question: Option<&'a [u8]>,
    },
    /// A malformed message with a readable header: answer FORMERR.
    FormErr {
        id: u16,
        flags: u16,
        question: Option<&'a [u8]>,
        edns: bool,
    },
    /// Not worth an answer: shorter than a header, or a response.
    Drop,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    /// Reads an uncompressed name into `out` (lowercased); compression is not valid in a
    /// question (there is nothing earlier to point to).
    fn name(&mut self, out: &mut NameBuf) -> Option<()> {
        let mut len = 0usize;
        loop {
            let l = self.u8()?;
            if l & 0xc0 != 0 {
                return None;
            }
            let l = l as usize;
            if len + 1 + l > MAX_NAME {
                return None;
            }
            out.bytes[len] = l as u8;
            len += 1;
            if l == 0 {
                break;
            }
            let label = self.take(l)?;
            for (d, s) in out.bytes[len..len + l].iter_mut().zip(label) {
                *d = s.to_ascii_lowercase();
            }
            len += l;
        }
        out.len = len as u8;
        Some(())
    }
    /// Skips a possibly compressed name in a record we do not interpret.
    fn skip_name(&mut self) -> Option<()> {
        for _ in 0..128 {
            let l = self.u8()?;
            match l & 0xc0 {
                0x00 if l == 0 => return Some(()),
                0x00 => {
                    self.take(l as usize)?;
                }
                0xc0 => {
                    self.u8()?;
                    return Some(());
                }
                _ => return None,
            }
        }
        None
    }
}

/// Parses a query packet. Never panics; every malformation maps to FORMERR or a drop.
pub fn parse(packet: &[u8]) -> Parsed<'_> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    let (Some(id), Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) =
        (r.u16(), r.u16(), r.u16(), r.u16(), r.u16(), r.u16())
    else {
        return Parsed::Drop;
    };
    if flags & 0x8000 != 0 {
        return Parsed::Drop;
    }
    let mut qname = NameBuf::new();
    let question = if qd == 1 {
        let start = r.pos;
        match (r.name(&mut qname), r.u16(), r.u16()) {
            (Some(()), Some(qtype), Some(qclass)) => Some((&packet[start..r.pos], qtype, qclass)),
            _ => None,
        }
    } else {
        None
    };
    let q_bytes = question.map(|q| q.0);
    let opcode = (flags >> 11) & 0x0f;
    if opcode != 0 {
        return Parsed::NotImp {
            id,
            flags,
            question: q_bytes,
        };
    }
    let formerr = |edns| Parsed::FormErr {
        id,
        flags,
        question: q_bytes,
        edns,
    };
    let Some((question, qtype, qclass)) = question else {
        return formerr(false);
    };
    if an != 0 || ns != 0 || qtype == rtype::OPT {
        return formerr(false);
    }
    let mut edns: Option<Edns> = None;
    for _ in 0..ar {
        let owner_start = r.pos;
        let Some(()) = r.skip_name() else {
            return formerr(edns.is_some());
        };
        let owner_root = r.pos == owner_start + 1;
        let (Some(t), Some(class), Some(ttl), Some(rdlen)) = (r.u16(), r.u16(), r.u32(), r.u16())
        else {
            return formerr(edns.is_some());
        };
        let Some(rdata) = r.take(rdlen as usize) else {
            return formerr(edns.is_some());
        };
        if t != rtype::OPT {
            continue;
        }
        // A second OPT, or an OPT whose owner is not the root, is malformed (RFC 6891 6.1.1).
        if edns.is_some() || !owner_root {
            return formerr(true);
        }
        let version = ((ttl >> 16) & 0xff) as u8;
        let dnssec_ok = ttl & 0x8000 != 0;
        let Some(ecs) = parse_options(rdata) else {
            return formerr(true);
        };
        edns = Some(Edns {
            version,
            udp_size: class,
            dnssec_ok,
            ecs,
        });
    }
    if r.pos != packet.len() {
        return formerr(edns.is_some());
    }
    Parsed::Query(Query {
        id,
        flags,
        question,
        qname,
        qtype,
        qclass,
        edns,
    })
}

/// Walks the OPT options; returns the Client Subnet option when there is a valid one, `None`
/// for a malformed option list (FORMERR).
fn parse_options(mut rdata: &[u8]) -> Option<Option<Ecs>> {
    let mut ecs = None;
    while !rdata.is_empty() {
        if rdata.len() < 4 {
            return None;
        }
        let code = u16::from_be_bytes([rdata[0], rdata[1]]);
        let len = u16::from_be_bytes([rdata[2], rdata[3]]) as usize;
        let body = rdata.get(4..4 + len)?;
        rdata = &rdata[4 + len..];
        if code == EDNS_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(body)?);
        }
    }
    Some(ecs)
}

/// Validates a Client Subnet option (RFC 7871 6): known family, source prefix within the
/// family's width, exactly ceil(source/8) address octets and no address bits set beyond the
/// source prefix.
fn parse_ecs(body: &[u8]) -> Option<Ecs> {
    if body.len() < 4 {
        return None;
    }
    let family = u16::from_be_bytes([body[0], body[1]]);
    let source = body[2];
    let addr = &body[4..];
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > width || addr.len() != source.div_ceil(8) as usize {
        return None;
    }
    if !source.is_multiple_of(8) {
        let last = addr[addr.len() - 1];
        let mask = 0xffu8 >> (source % 8);
        if last & mask != 0 {
            return None;
        }
    }
    let ip = if family == 1 {
        let mut o = [0u8; 4];
        o[..addr.len()].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..addr.len()].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Some(Ecs {
        family,
        source,
        addr: ip,
    })
}

/// A precomputed resource record: owner and RDATA in uncompressed lowercase wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub owner: Box<[u8]>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Box<[u8]>,
    /// Offset of a domain name inside `rdata` that later owners may point to (CNAME target,
    /// NS host), if any.
    pub rdata_name_at: Option<u16>,
}

/// Maximum records in one section of a response.
pub const MAX_SECTION: usize = 64;

/// A fixed-capacity list of record references (no heap on the answer path).
pub struct RrList<'z> {
    items: [Option<&'z Rr>; MAX_SECTION],
    len: usize,
}

impl<'z> RrList<'z> {
    pub fn new() -> Self {
        RrList {
            items: [None; MAX_SECTION],
            len: 0,
        }
    }
    /// Appends a record; returns false (dropping it) when the section is full.
    pub fn push(&mut self, rr: &'z Rr) -> bool {
        if self.len == MAX_SECTION {
            return false;
        }
        self.items[self.len] = Some(rr);
        self.len += 1;
        true
    }
    pub fn extend(&mut self, rrs: &'z [Rr]) {
        for rr in rrs {
            self.push(rr);
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &'z Rr> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }
}

impl Default for RrList<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The content of a response, decided by the resolver and laid out by [`write_response`].
pub struct Reply<'z> {
    /// Full (extended) response code.
    pub rcode: u16,
    pub authoritative: bool,
    pub answers: RrList<'z>,
    pub authority: RrList<'z>,
    pub additional: RrList<'z>,
    /// SCOPE PREFIX-LENGTH to echo with the query's ECS option (only when it had one).
    pub ecs_scope: u8,
}

impl<'z> Reply<'z> {
    pub fn new(rcode: u16) -> Self {
        Reply {
            rcode,
            authoritative: false,
            answers: RrList::new(),
            authority: RrList::new(),
            additional: RrList::new(),
            ecs_scope: 0,
        }
    }
}

/// Our advertised EDNS UDP payload size (the DNS flag day 2020 value).
pub const OUR_UDP_PAYLOAD: u16 = 1232;

/// Header facts a response needs, whether or not the query parsed fully.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo<'a> {
    pub id: u16,
    pub flags: u16,
    pub question: Option<&'a [u8]>,
    /// Whether the query carried EDNS (then the response carries OPT, else never).
    pub edns: Option<Edns>,
}

impl<'a> From<&Query<'a>> for ReplyTo<'a> {
    fn from(q: &Query<'a>) -> Self {
        ReplyTo {
            id: q.id,
            flags: q.flags,
            question: Some(q.question),
            edns: q.edns,
        }
    }
}

/// Known names in the packet being written, for compression.
struct Names {
    at: [(u16, u16); 16],
    len: usize,
}

struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    overflow: bool,
    names: Names,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.overflow || self.pos + bytes.len() > self.buf.len() {
            self.overflow = true;
            return;
        }
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn remember(&mut self, offset: usize) {
        if offset < 0x3fff && self.names.len < self.names.at.len() {
            self.names.at[self.names.len] = (offset as u16, 0);
            self.names.len += 1;
        }
    }
    /// Reads the (uncompressed or compressed) name at `offset` of the packet already written,
    /// comparing its label-boundary suffixes with `name[i..]`; returns the offset of a match.
    fn find_suffix(&self, name: &[u8]) -> Option<u16> {
        for k in 0..self.names.len {
            let mut off = self.names.at[k].0 as usize;
            let mut guard = 0;
            // Walk the labels of the remembered name; at each label boundary compare.
            while guard < 128 {
                guard += 1;
                if self.buf.get(off).is_some_and(|b| b & 0xc0 == 0xc0) {
                    let hi = (self.buf[off] & 0x3f) as usize;
                    let lo = *self.buf.get(off + 1)? as usize;
                    off = hi << 8 | lo;
                    continue;
                }
                if off < 0x4000 && equal_at(self.buf, off, name) {
                    return Some(off as u16);
                }
                let l = *self.buf.get(off)? as usize;
                if l == 0 {
                    break;
                }
                off += 1 + l;
            }
        }
        None
    }
    /// Writes `name` (lowercase wire format) compressed against the names already written.
    fn name(&mut self, name: &[u8]) {
        let start = self.pos;
        let mut i = 0;
        while i < name.len() {
            let l = name[i] as usize;
            if l == 0 {
                self.put(&[0]);
                break;
            }
            if let Some(off) = self.find_suffix(&name[i..]) {
                self.u16(0xc000 | off);
                break;
            }
            self.put(&name[i..i + 1 + l]);
            i += 1 + l;
        }
        if start != self.pos {
            self.remember(start);
        }
    }
    fn record(&mut self, rr: &Rr) {
        self.name(&rr.owner);
        self.u16(rr.rtype);
        self.u16(CLASS_IN);
        self.u32(rr.ttl);
        self.u16(rr.rdata.len() as u16);
        let at = self.pos;
        self.put(&rr.rdata);
        if let Some(n) = rr.rdata_name_at {
            self.remember(at + n as usize);
        }
    }
}

/// Compares the name written at `off` (following compression pointers) with `name`,
/// case-insensitively.
fn equal_at(buf: &[u8], mut off: usize, name: &[u8]) -> bool {
    let mut i = 0;
    for _ in 0..128 {
        let Some(&l) = buf.get(off) else { return false };
        if l & 0xc0 == 0xc0 {
            let Some(&lo) = buf.get(off + 1) else {
                return false;
            };
            off = ((l & 0x3f) as usize) << 8 | lo as usize;
            continue;
        }
        if name.get(i) != Some(&l) {
            return false;
        }
        if l == 0 {
            return true;
        }
        let l = l as usize;
        let (Some(a), Some(b)) = (buf.get(off + 1..off + 1 + l), name.get(i + 1..i + 1 + l)) else {
            return false;
        };
        if !a.eq_ignore_ascii_case(b) {
            return false;
        }
        off += 1 + l;
        i += 1 + l;
    }
    false
}

/// Writes the response into `buf` (no larger than the transport allows: 512 for UDP without
/// EDNS, the smaller of the client's and our payload size with it, 65535 over TCP). When the
/// full answer does not fit, writes the header, question and OPT with TC set. Returns the length.
pub fn write_response(buf: &mut [u8], to: &ReplyTo<'_>, reply: &Reply<'_>) -> usize {
    let full = write_sections(buf, to, reply, true);
    match full {
        Some(n) => n,
        None => write_sections(buf, to, reply, false).unwrap_or(0),
    }
}

fn write_sections(
    buf: &mut [u8],
    to: &ReplyTo<'_>,
    reply: &Reply<'_>,
    with_records: bool,
) -> Option<usize> {
    let mut w = Writer {
        buf,
        pos: 0,
        overflow: false,
        names: Names {
            at: [(0, 0); 16],
            len: 0,
        },
    };
    // QR=1, opcode and RD copied, AA as decided, TC when records were left out, CD copied.
    let mut flags = 0x8000 | (to.flags & 0x7900) | (to.flags & 0x0010) | (reply.rcode & 0x0f);
    if reply.authoritative {
        flags |= 0x0400;
    }
    if !with_records {
        flags |= 0x0200;
    }
    let (an, ns, ar) = if with_records {
        (
            reply.answers.len(),
            reply.authority.len(),
            reply.additional.len(),
        )
    } else {
        (0, 0, 0)
    };
    let opt = to.edns.is_some() as usize;
    w.u16(to.id);
    w.u16(flags);
    w.u16(to.question.is_some() as u16);
    w.u16(an as u16);
    w.u16(ns as u16);
    w.u16((ar + opt) as u16);
    if let Some(q) = to.question {
        let start = w.pos;
        w.put(q);
        w.remember(start);
    }
    if with_records {
        for rr in reply
            .answers
            .iter()
            .chain(reply.authority.iter())
            .chain(reply.additional.iter())
        {
            w.record(rr);
        }
    }
    if let Some(edns) = to.edns {
        w.put(&[0]);
        w.u16(rtype::OPT);
        w.u16(OUR_UDP_PAYLOAD);
        let ext = ((reply.rcode >> 4) & 0xff) as u32;
        w.u32(ext << 24 | if edns.dnssec_ok { 0x8000 } else { 0 });
        match (edns.ecs, reply.rcode) {
            (Some(ecs), rc) if rc != rcode::BADVERS && rc != rcode::FORMERR => {
                let n = ecs.source.div_ceil(8) as usize;
                w.u16((8 + n) as u16);
                w.u16(EDNS_ECS);
                w.u16((4 + n) as u16);
                w.u16(ecs.family);
                w.put(&[ecs.source, reply.ecs_scope]);
                match ecs.addr {
                    IpAddr::V4(a) => w.put(&a.octets()[..n]),
                    IpAddr::V6(a) => w.put(&a.octets()[..n]),
                }
            }
            _ => w.u16(0),
        }
    }
    if w.overflow {
        None
    } else {
        Some(w.pos)
    }
}

/// Encodes a dotted name ("video.example.test" or with a trailing dot) in lowercase wire format.
pub fn name_from_str(s: &str) -> Result<Box<[u8]>, String> {
    let s = s.trim().trim_end_matches('.');
    let mut out = Vec::with_capacity(s.len() + 2);
    if !s.is_empty() {
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!(
                    "invalid domain name `{s}`: empty or over-long label"
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("invalid domain name `{s}`: label `{label}` has characters other than letters, digits, - and _"));
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    if out.len() > MAX_NAME {
        return Err(format!("invalid domain name `{s}`: longer than 255 octets"));
    }
    Ok(out.into_boxed_slice())
}

/// Renders a wire-format name as text with a trailing dot.
pub fn name_to_string(name: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while let Some(&l) = name.get(i) {
        if l == 0 {
            break;
        }
        let l = l as usize;
        if let Some(label) = name.get(i + 1..i + 1 + l) {
            s.push_str(&String::from_utf8_lossy(label));
        }
        s.push('.');
        i += 1 + l;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The offsets of each label-boundary suffix of a wire name (the name itself first, the root
/// last).
pub fn suffixes(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0usize;
    std::iter::from_fn(move || {
        let l = *name.get(i)? as usize;
        let s = &name[i..];
        if l == 0 {
            i = name.len() + 1;
        } else {
            i += 1 + l;
        }
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            opt.is_some() as u8,
        ];
        p.extend_from_slice(&name_from_str(name).unwrap());
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        if let Some(rdata) = opt {
            p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend_from_slice(rdata);
        }
        p
    }

    #[test]
    fn parses_plain_query_lowercasing_the_name() {
        let mut p = query("Video.Example.TEST", rtype::A, None);
        p[13] = b'V';
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(
            q.qname.as_slice(),
            &*name_from_str("video.example.test").unwrap()
        );
        assert_eq!(q.qtype, rtype::A);
        assert!(q.edns.is_none());
        assert_eq!(q.question[1], b'V', "question is echoed as sent");
    }

    #[test]
    fn validates_ecs() {
        let ok = [0, 8, 0, 7, 0, 1, 24, 0, 10, 1, 2];
        let p = query("a.test", 1, Some(&ok));
        let Parsed::Query(q) = parse(&p) else {
            panic!()
        };
        let ecs = q.edns.unwrap().ecs.unwrap();
        assert_eq!((ecs.source, ecs.addr), (24, "10.1.2.0".parse().unwrap()));
        // Bits set beyond the /23 source prefix.
        let bad_bits = [0, 8, 0, 7, 0, 1, 23, 0, 10, 1, 3];
        assert!(matches!(
            parse(&query("a.test", 1, Some(&bad_bits))),
            Parsed::FormErr { edns: true, .. }
        ));
        // Too many address octets for /16.
        let extra = [0, 8, 0, 7, 0, 1, 16, 0, 10, 1, 0];
        assert!(matches!(
            parse(&query("a.test", 1, Some(&extra))),
            Parsed::FormErr { .. }
        ));
        // Unknown family, prefix beyond the family width, truncated option.
        for bad in [
            &[0, 8, 0, 4, 0, 3, 0, 0][..],
            &[0, 8, 0, 9, 0, 1, 40, 0, 1, 2, 3, 4, 5],
            &[0, 8, 0, 9, 0, 1],
        ] {
            assert!(
                matches!(
                    parse(&query("a.test", 1, Some(bad))),
                    Parsed::FormErr { .. }
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_inputs_never_panic() {
        let base = query(
            "video.cdn.example.test",
            1,
            Some(&[0, 8, 0, 7, 0, 1, 24, 0, 127, 0, 1]),
        );
        for cut in 0..base.len() {
            let _ = parse(&base[..cut]);
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            let mut p = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % p.len();
                p[i] = (x >> 8) as u8;
            }
            let _ = parse(&p);
        }
        assert!(matches!(parse(&[0u8; 5]), Parsed::Drop));
    }

    #[test]
    fn compression_points_into_the_question() {
        let p = query("video.cdn.example.test", 1, None);
        let Parsed::Query(q) = parse(&p) else {
            panic!()
        };
        let rr = Rr {
            owner: name_from_str("video.cdn.example.test").unwrap(),
            rtype: rtype::A,
            ttl: 20,
            rdata: vec![127, 0, 1, 1].into(),
            rdata_name_at: None,
        };
        let soa_owner = Rr {
            owner: name_from_str("cdn.example.test").unwrap(),
            ..rr.clone()
        };
        let mut reply = Reply::new(rcode::NOERROR);
        reply.answers.push(&rr);
        reply.authority.push(&soa_owner);
        let mut buf = [0u8; 512];
        let n = write_response(&mut buf, &ReplyTo::from(&q), &reply);
        let qlen = q.question.len();
        assert_eq!(&buf[12 + qlen..12 + qlen + 2], &[0xc0, 12]);
        // The second owner is a suffix of the question name: pointer to its "cdn" label.
        let second = 12 + qlen + 2 + 10 + 4;
        assert_eq!(&buf[second..second + 2], &[0xc0, 12 + 6]);
        assert_eq!(n, second + 2 + 10 + 4);
    }

    #[test]
    fn truncates_when_too_big() {
        let p = query("a.test", 1, None);
        let Parsed::Query(q) = parse(&p) else {
            panic!()
        };
        let rr = Rr {
            owner: name_from_str("a.test").unwrap(),
            rtype: 16,
            ttl: 1,
            rdata: vec![7; 600].into(),
            rdata_name_at: None,
        };
        let mut reply = Reply::new(rcode::NOERROR);
        reply.answers.push(&rr);
        let mut buf = [0u8; 512];
        let n = write_response(&mut buf, &ReplyTo::from(&q), &reply);
        assert_eq!(n, 12 + q.question.len());
        assert_eq!(buf[2] & 0x02, 0x02, "TC set");
        assert_eq!(&buf[6..8], &[0, 0], "no answers");
    }

    #[test]
    fn suffix_iteration() {
        let n = name_from_str("a.bc.test").unwrap();
        let all: Vec<String> = suffixes(&n).map(name_to_string).collect();
        assert_eq!(all, ["a.bc.test.", "bc.test.", "test.", "."]);
    }
}
