//! `X-Twilio-Signature`: Base64(HMAC-SHA1(auth token, URL + every POST
//! parameter sorted by name, name then value, no separators)), over the
//! exact public URL called (query string included). Proxies and load
//! balancers may add or drop the default port, so a URL is checked with and
//! without it.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio signs with.
pub const HEADER: &str = "x-twilio-signature";

/// The signature of a request to `url` with form `params`.
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then (repeated keys) by value.
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with its scheme's default port added when absent, or removed when
/// present; `None` when it has another port or no scheme.
fn other_port_form(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(split);
    if let Some(bare) = host.strip_suffix(port) {
        Some(format!("{scheme}://{bare}{tail}"))
    } else if host.contains(':') {
        None
    } else {
        Some(format!("{scheme}://{host}{port}{tail}"))
    }
}

/// Whether `signature` signs a request to `url` with `params` (with or
/// without the default port), compared in constant time.
pub fn verify(token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let same = |expected: String| {
        expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    !token.is_empty()
        && (same(sign(token, url, params))
            || other_port_form(url).is_some_and(|u| same(sign(token, &u, params))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn the_documented_test_vectors() {
        assert_eq!(
            sign("12345", URL, &params("+14158675310")),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            sign("12345", URL, &params("+14158675309")),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn verification_holds_with_and_without_the_default_port_only() {
        let p = params("+14158675310");
        let good = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(verify("12345", URL, &p, good));
        assert!(verify(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &p,
            good
        ));
        // Signed with the port, checked without it.
        let with_port = sign(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &p,
        );
        assert!(verify("12345", URL, &p, &with_port));
        assert!(!verify(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &p,
            good
        ));
        assert!(!verify("12346", URL, &p, good), "another token");
        assert!(
            !verify("12345", URL, &params("+14158675309"), good),
            "another body"
        );
        assert!(!verify("", URL, &p, good), "no token signs nothing");
    }

    #[test]
    fn repeated_keys_sort_by_value() {
        let a = vec![
            ("StatusCallbackEvent".to_owned(), "ringing".to_owned()),
            ("StatusCallbackEvent".to_owned(), "answered".to_owned()),
        ];
        let b = vec![a[1].clone(), a[0].clone()];
        assert_eq!(
            sign("t", "https://x.example/", &a),
            sign("t", "https://x.example/", &b)
        );
    }
}
