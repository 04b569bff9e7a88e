//! The local Power BI / Fabric / Entra / Power Automate simulator (axum).
