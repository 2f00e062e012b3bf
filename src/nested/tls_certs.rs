//! The certificates of libvirt's TLS listener, made with rcgen: a CA, a
//! server certificate and a client certificate, as PEM text. No files here
//! (see `tls.rs`).
//!
//! What libvirt (gnutls) checks, and so what these carry (PLATFORM-FACTS):
//! the CA has basicConstraints CA=true and may sign certificates; a leaf's
//! keyUsage (rcgen marks it critical) has both digitalSignature and
//! keyEncipherment; the server's extendedKeyUsage is serverAuth and its
//! SAN holds the name the client dialled; the client's is clientAuth and
//! its DN must be on the server's `tls_allowed_dn_list`.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::pem::parse_x509_pem;

use crate::error::{Failure, Result};

/// The CA's subject. Leaves name it as their issuer, read back from the
/// stored CA certificate, so changing it here never breaks an old CA.
const CA_NAME: &str = "boxvirt CA";
const CA_YEARS: i64 = 10;
/// `boxvirt tls rotate` renews them.
const LEAF_YEARS: i64 = 3;

/// A name in the server certificate: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Ip(IpAddr),
    Dns(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Ip(ip) => write!(f, "{ip}"),
            San::Dns(name) => f.write_str(name),
        }
    }
}

/// An IP address, or a DNS name (labels of letters, digits and inner
/// hyphens, at most 63 bytes each, 253 in all); anything else is None.
pub fn parse_san(text: &str) -> Option<San> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(San::Ip(ip));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // All digits and dots is a broken IP address, not a name.
    let numeric = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    (text.len() <= 253 && !numeric && text.split('.').all(label_ok))
        .then(|| San::Dns(text.to_ascii_lowercase()))
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The instance's certificate authority: its key and certificate.
pub struct Ca {
    key: KeyPair,
    pub cert_pem: String,
}

fn fail(what: &str, e: rcgen::Error) -> Failure {
    Failure::failed(format!("cannot make the {what}: {e}"))
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour back: a clock a little behind still accepts a fresh certificate.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
}

fn leaf_params(cn: &str, purpose: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![purpose];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_YEARS);
    params
}

impl Ca {
    /// A new CA (ECDSA P-256), valid for ten years.
    pub fn generate() -> Result<Ca> {
        let key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_NAME);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_YEARS);
        let cert = params
            .self_signed(&key)
            .map_err(|e| fail("CA certificate", e))?;
        Ok(Ca {
            key,
            cert_pem: cert.pem(),
        })
    }

    /// The CA stored earlier (its key and certificate, PEM).
    pub fn load(key_pem: &str, cert_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| fail("CA from its stored key", e))?;
        // A swapped key would sign certificates nobody accepts: say so now.
        if public_key(cert_pem).as_deref() != Some(key.subject_public_key_info().as_slice()) {
            return Err(Failure::failed(
                "the stored CA key does not belong to the stored CA certificate",
            ));
        }
        Ok(Ca {
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| fail("issuer from the stored CA certificate", e))
    }

    fn issue(&self, params: CertificateParams, what: &str) -> Result<Issued> {
        let key = KeyPair::generate().map_err(|e| fail(&format!("{what} key"), e))?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| fail(&format!("{what} certificate"), e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The server certificate for `sans` (at least one).
    pub fn issue_server(&self, cn: &str, sans: &[San]) -> Result<Issued> {
        let mut params = leaf_params(cn, ExtendedKeyUsagePurpose::ServerAuth);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s {
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
                San::Dns(name) => name
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| fail(&format!("server name {name}"), e)),
            })
            .collect::<Result<_>>()?;
        self.issue(params, "server")
    }

    /// A client certificate whose DN is `CN=<cn>` (see [`client_dn`]).
    pub fn issue_client(&self, cn: &str) -> Result<Issued> {
        self.issue(
            leaf_params(cn, ExtendedKeyUsagePurpose::ClientAuth),
            "client",
        )
    }
}

/// The subject public key (DER) of a PEM certificate.
fn public_key(cert_pem: &str) -> Option<Vec<u8>> {
    let (_, pem) = parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.public_key().raw.to_vec())
}

/// When a PEM certificate stops being valid (seconds since the epoch);
/// None when it does not parse.
pub fn expires(cert_pem: &str) -> Option<i64> {
    let (_, pem) = parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The DN of a client certificate made by [`Ca::issue_client`], as libvirtd
/// compares it with `tls_allowed_dn_list` (one attribute: no order to get
/// wrong).
pub fn client_dn(cn: &str) -> String {
    format!("CN={cn}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn parse(pem_text: &str) -> Vec<u8> {
        let (_, pem) = parse_x509_pem(pem_text.as_bytes()).unwrap();
        pem.contents
    }

    #[test]
    fn sans_are_names_or_addresses() {
        assert_eq!(
            parse_san("127.0.0.1"),
            Some(San::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(parse_san("::1"), Some(San::Ip("::1".parse().unwrap())));
        assert_eq!(
            parse_san("Host-1.Example.org"),
            Some(San::Dns("host-1.example.org".into()))
        );
        assert_eq!(parse_san("localhost"), Some(San::Dns("localhost".into())));
        for bad in [
            "",
            "a b",
            "-a.org",
            "a-.org",
            "a..b",
            "256.1.1.1",
            "1.2.3",
            "x_y",
            "*.a.org",
            &"a".repeat(64),
        ] {
            assert_eq!(parse_san(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_ca_signs_a_server_and_a_client_libvirt_accepts() {
        let ca = Ca::generate().unwrap();
        let sans = [
            San::Ip("127.0.0.1".parse().unwrap()),
            San::Dns("localhost".into()),
            San::Dns("build-7.example.org".into()),
        ];
        let server = ca.issue_server("boxvirt-server", &sans).unwrap();
        let client = ca.issue_client("boxvirt-client-dev-1").unwrap();

        let ca_der = parse(&ca.cert_pem);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(ca_cert.is_ca());
        assert!(ca_cert.key_usage().unwrap().unwrap().value.key_cert_sign());

        let der = parse(&server.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(b) => format!("{b:?}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            ["[127, 0, 0, 1]", "localhost", "build-7.example.org"]
        );
        let usage = cert.key_usage().unwrap().unwrap();
        assert!(usage.critical);
        assert!(usage.value.digital_signature() && usage.value.key_encipherment());
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        assert!(!cert.is_ca());

        let der = parse(&client.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(
            cert.subject().to_string(),
            client_dn("boxvirt-client-dev-1")
        );
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        assert!(cert.validity().is_valid());
        assert_ne!(server.key_pem, client.key_pem);
    }

    #[test]
    fn a_stored_ca_keeps_signing_as_itself() {
        let ca = Ca::generate().unwrap();
        let again = Ca::load(&ca.key_pem(), &ca.cert_pem).unwrap();
        let client = again.issue_client("c").unwrap();
        let ca_der = parse(&ca.cert_pem);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        let der = parse(&client.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(Ca::load(&ca.key_pem(), "not a certificate").is_err());
        assert!(Ca::load("not a key", &ca.cert_pem).is_err());
        let other = Ca::generate().unwrap();
        let e = Ca::load(&other.key_pem(), &ca.cert_pem).err().unwrap();
        assert!(e.message.contains("does not belong"), "{}", e.message);
        // Three years for a leaf, give or take the hour back.
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let left = expires(&client.cert_pem).unwrap() - now;
        assert!(
            (365 * 3 * 86400 - 60..=365 * 3 * 86400 + 60).contains(&left),
            "{left}"
        );
        assert_eq!(expires("junk"), None);
    }
}
