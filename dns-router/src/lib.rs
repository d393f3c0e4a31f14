//! The DNS router: an authoritative, geo-aware DNS server that answers the content name with a
//! CNAME to the CDN name, and that name with the nearest healthy edge for the client.
