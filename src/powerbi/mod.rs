//! The Power BI / Fabric REST client: one reqwest client, tokens, HTTP-level retry.
