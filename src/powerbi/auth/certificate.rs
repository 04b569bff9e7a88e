//! Certificate credentials: the client assertion Entra ID takes instead of a client secret, a
//! JWT signed RS256 with the certificate's private key whose header names the certificate by
//! its thumbprints (`x5t`: SHA-1, `x5t#S256`: SHA-256), read from one PEM file holding the key
//! and the certificate (what `AZURE_CLIENT_CERTIFICATE_PATH` points at).
//!
//! The key is read from the file at each token request (a renewed certificate is picked up)
//! and lives only in memory; the assertion is a [`Secret`].

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::secret::Secret;

/// The `client_assertion_type` of a JWT client assertion (certificate or federated token).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of an assertion: Entra accepts up to 10 minutes' worth of clock skew handling;
/// MSAL signs for 10 minutes.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A loaded certificate: its private key and its thumbprints.
pub(crate) struct ClientCertificate {
    key: RsaKeyPair,
    /// Base64url SHA-1 of the certificate's DER (`x5t`).
    x5t: String,
    /// Base64url SHA-256 of the certificate's DER (`x5t#S256`).
    x5t_s256: String,
    /// Upper-case hex SHA-1, as the portal and Entra's errors show it.
    pub thumbprint: String,
}

/// The SHA-1 and SHA-256 thumbprints of a certificate's DER, base64url, plus the hex SHA-1.
pub(crate) fn thumbprints(der: &[u8]) -> (String, String, String) {
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let sha256 = digest::digest(&digest::SHA256, der);
    (
        URL_SAFE_NO_PAD.encode(sha1.as_ref()),
        URL_SAFE_NO_PAD.encode(sha256.as_ref()),
        hex::encode_upper(sha1.as_ref()),
    )
}

/// The first certificate in PEM text, as DER.
pub(crate) fn first_certificate(pem: &[u8]) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).find_map(Result::ok)
}

/// Verifies an RS256 signature over `message` with the public key of certificate `der`.
pub(crate) fn verify_rs256(der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let cert = CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&cert) else {
        return false;
    };
    cert.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
}

impl ClientCertificate {
    /// Reads the PEM file at `path`: a certificate and its RSA private key (PKCS#8 or PKCS#1),
    /// in any order. Every refusal says what is wrong with the file, never what is in it.
    pub(crate) fn load(path: &Path) -> Result<ClientCertificate, String> {
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the certificate file {shown}: {e}"))?;
        let is_pkcs12 = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"));
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(if is_pkcs12 || bytes.first() == Some(&0x30) {
                format!(
                    "{shown} is a PKCS#12 (.pfx) file, which is not supported: convert it to PEM \
                     with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes` and keep that file \
                     as secret as the .pfx"
                )
            } else {
                format!("{shown} is not a PEM file (no `-----BEGIN` line)")
            });
        }
        if bytes.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
            return Err(format!(
                "the private key in {shown} is encrypted, which is not supported: decrypt it \
                 with `openssl pkey -in cert.pem -out key.pem` and keep the result secret"
            ));
        }
        let cert = first_certificate(&bytes).ok_or_else(|| {
            format!(
                "{shown} holds no certificate (`-----BEGIN CERTIFICATE-----`): put the \
                 certificate registered on the app and its private key in one PEM file"
            )
        })?;
        let key = match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(PrivateKeyDer::Pkcs8(k)) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            Ok(PrivateKeyDer::Pkcs1(k)) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            Ok(_) => {
                return Err(format!(
                    "the private key in {shown} is not an RSA key: Entra ID client \
                     assertions are signed RS256, so the certificate needs an RSA key"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "{shown} holds no private key (`-----BEGIN PRIVATE KEY-----` or \
                     `-----BEGIN RSA PRIVATE KEY-----`): put the private key and the \
                     certificate in one PEM file"
                ));
            }
        }
        .map_err(|e| format!("the private key in {shown} cannot be used: {e}"))?;
        let (x5t, x5t_s256, thumbprint) = thumbprints(cert.as_ref());
        let loaded = ClientCertificate {
            key,
            x5t,
            x5t_s256,
            thumbprint,
        };
        // A key and certificate that do not belong together would only be refused by Entra
        // (AADSTS700027); say so here, where the file can be named.
        let probe = b"pbibatch key check";
        let signature = loaded.sign(probe)?;
        if !verify_rs256(cert.as_ref(), probe, &signature) {
            return Err(format!(
                "the private key in {shown} does not belong to its certificate (thumbprint {})",
                loaded.thumbprint
            ));
        }
        Ok(loaded)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(signature)
    }

    /// A client assertion for `client_id` addressed to the token endpoint `token_url`,
    /// valid from `now` (Unix seconds) for 10 minutes.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: i64,
    ) -> Result<Secret, String> {
        let header = json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.x5t,
            "x5t#S256": self.x5t_s256,
        });
        let claims = json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// The parts of a compact JWT: header and claims as JSON, the signing input and the
/// signature bytes. Not verified.
pub(crate) struct JwtParts {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWT (`None` when it is not one).
pub(crate) fn decode_jwt(token: &str) -> Option<JwtParts> {
    let mut parts = token.trim().split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = |seg: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg.trim_end_matches('=')).ok()?).ok()
    };
    Some(JwtParts {
        header: json(h)?,
        claims: json(c)?,
        signing_input: format!("{h}.{c}"),
        signature: URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/auth")
            .join(name)
    }

    #[test]
    fn an_assertion_is_signed_with_the_key_and_names_the_certificate() {
        let path = fixture("test-only-cert.pem");
        let cert = ClientCertificate::load(&path).unwrap();
        let url = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let jwt = cert.assertion("app", url, 1_700_000_000).unwrap();
        let parts = decode_jwt(jwt.expose()).unwrap();
        assert_eq!(parts.header["alg"], "RS256");
        let der = first_certificate(&std::fs::read(&path).unwrap()).unwrap();
        let (x5t, x5t_s256, hex) = thumbprints(der.as_ref());
        assert_eq!(parts.header["x5t"], x5t.as_str());
        assert_eq!(parts.header["x5t#S256"], x5t_s256.as_str());
        assert_eq!(cert.thumbprint, hex);
        assert_eq!(parts.claims["aud"], url);
        assert_eq!(parts.claims["iss"], "app");
        assert_eq!(parts.claims["sub"], "app");
        assert_eq!(parts.claims["exp"], 1_700_000_600);
        assert!(verify_rs256(
            der.as_ref(),
            parts.signing_input.as_bytes(),
            &parts.signature
        ));
        let other = first_certificate(&std::fs::read(fixture("test-only-other-cert.pem")).unwrap())
            .unwrap();
        assert!(!verify_rs256(
            other.as_ref(),
            parts.signing_input.as_bytes(),
            &parts.signature
        ));
    }

    #[test]
    fn unusable_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = |name: &str, content: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            match ClientCertificate::load(&p) {
                Ok(_) => panic!("{name} accepted"),
                Err(e) => e,
            }
        };
        assert!(err("c.pfx", &[0x30, 0x82, 1, 2]).contains("PKCS#12"));
        assert!(err("c.txt", b"hello").contains("not a PEM file"));
        let pem = std::fs::read_to_string(fixture("test-only-cert.pem")).unwrap();
        let cert_only: String = pem
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .collect();
        assert!(err("cert.pem", cert_only.as_bytes()).contains("no private key"));
        let key_only: String = pem
            .split_inclusive('\n')
            .take_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .collect();
        assert!(err("key.pem", key_only.as_bytes()).contains("no certificate"));
        let other = std::fs::read_to_string(fixture("test-only-other-cert.pem")).unwrap();
        let other_cert: String = other
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .collect();
        let mismatched = format!("{key_only}{other_cert}");
        assert!(err("mixed.pem", mismatched.as_bytes()).contains("does not belong"));
        assert!(
            err(
                "enc.pem",
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
            .contains("encrypted")
        );
        let missing = ClientCertificate::load(&dir.path().join("absent.pem"))
            .err()
            .unwrap();
        assert!(
            missing.contains("cannot read the certificate file"),
            "{missing}"
        );
    }
}
