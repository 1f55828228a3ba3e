//! The languages Twilio's `<Say>` speaks (its `language` attribute), and
//! how a customer's locale (BCP 47: language, optional script, optional
//! region, as `zh-Hant-TW` or `pt_BR`) maps to one of them.
//!
//! A locale's region is kept when Twilio speaks the language for it
//! (`en-GB`, `fr-CA`); otherwise the language's own default is used
//! (`de-LI` → `de-DE`). Chinese is decided by region, then by script:
//! Traditional script is Taiwanese Mandarin (`zh-TW`), Hong Kong and Macao
//! are Cantonese (`zh-HK`), everything else Mandarin (`zh-CN`).

/// Each language Twilio speaks, with the regions it speaks it for; the
/// first is the language's default.
const LANGUAGES: &[(&str, &[&str])] = &[
    ("ca", &["ES"]),
    ("da", &["DK"]),
    ("de", &["DE", "AT", "CH"]),
    ("en", &["US", "GB", "AU", "CA", "IN", "IE", "NZ", "ZA"]),
    ("es", &["ES", "MX", "US"]),
    ("fi", &["FI"]),
    ("fr", &["FR", "CA", "BE"]),
    ("it", &["IT"]),
    ("ja", &["JP"]),
    ("ko", &["KR"]),
    ("nb", &["NO"]),
    ("nl", &["NL", "BE"]),
    ("pl", &["PL"]),
    ("pt", &["BR", "PT"]),
    ("ru", &["RU"]),
    ("sv", &["SE"]),
    ("tr", &["TR"]),
    ("zh", &["CN", "TW", "HK"]),
];

/// The parts of a BCP 47 tag that choose a voice.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tag {
    /// Lower case, two or three letters.
    language: String,
    /// Title case (`Hant`), when given.
    script: Option<String>,
    /// Upper case letters or three digits (`TW`, `419`), when given.
    region: Option<String>,
}

/// Reads the language, script and region of a tag (`_` taken as `-`);
/// `None` when it does not start with a language.
fn parse(locale: &str) -> Option<Tag> {
    let mut parts = locale.trim().split(['-', '_']);
    let language = parts.next()?.to_ascii_lowercase();
    let letters = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    if !(2..=3).contains(&language.len()) || !letters(&language) {
        return None;
    }
    let mut tag = Tag {
        language,
        ..Tag::default()
    };
    for part in parts {
        match part.len() {
            4 if tag.script.is_none() && tag.region.is_none() && letters(part) => {
                let mut script = part.to_ascii_lowercase();
                script[..1].make_ascii_uppercase();
                tag.script = Some(script);
            }
            2 if tag.region.is_none() && letters(part) => {
                tag.region = Some(part.to_ascii_uppercase());
            }
            3 if tag.region.is_none() && part.bytes().all(|b| b.is_ascii_digit()) => {
                tag.region = Some(part.to_owned());
            }
            // Variants and extensions do not change the voice.
            _ => break,
        }
    }
    Some(tag)
}

/// The `<Say>` language for a customer's locale; `None` for a language
/// Twilio does not speak (or a locale that is none).
pub fn say_language(locale: &str) -> Option<String> {
    let tag = parse(locale)?;
    let region = tag.region.as_deref();
    let (language, region) = match tag.language.as_str() {
        // Norwegian is spoken as Bokmål.
        "no" | "nn" | "nb" => ("nb", region),
        // Mandarin and Cantonese by their own codes.
        "cmn" => ("zh", Some(region.unwrap_or("CN"))),
        "yue" => ("zh", Some("HK")),
        "zh" => {
            let region = match (region, tag.script.as_deref()) {
                (Some("HK" | "MO"), _) => "HK",
                (Some("TW"), _) => "TW",
                (Some("CN" | "SG"), _) => "CN",
                (_, Some("Hant")) => "TW",
                _ => "CN",
            };
            ("zh", Some(region))
        }
        // Latin American Spanish is spoken as Mexico's.
        "es" => match region {
            Some("ES") | None => ("es", Some("ES")),
            Some("US") => ("es", Some("US")),
            Some(_) => ("es", Some("MX")),
        },
        // Portuguese outside Brazil is spoken as Portugal's.
        "pt" => match region {
            Some("BR") | None => ("pt", Some("BR")),
            Some(_) => ("pt", Some("PT")),
        },
        other => (other, region),
    };
    let (_, regions) = LANGUAGES.iter().find(|(l, _)| *l == language)?;
    let region = region.filter(|r| regions.contains(r)).unwrap_or(regions[0]);
    Some(format!("{language}-{region}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_map_to_the_languages_twilio_speaks() {
        for (locale, spoken) in [
            ("de", Some("de-DE")),
            ("de-AT", Some("de-AT")),
            ("de-LI", Some("de-DE")),
            ("pt_br", Some("pt-BR")),
            ("pt-AO", Some("pt-PT")),
            ("en-GB", Some("en-GB")),
            ("en-SG", Some("en-US")),
            ("en-Latn-GB", Some("en-GB")),
            ("fr-CA", Some("fr-CA")),
            ("es-419", Some("es-MX")),
            ("es-AR", Some("es-MX")),
            ("no", Some("nb-NO")),
            ("zh", Some("zh-CN")),
            ("zh-Hans", Some("zh-CN")),
            ("zh-Hant", Some("zh-TW")),
            ("zh-Hant-TW", Some("zh-TW")),
            ("zh_hant_tw", Some("zh-TW")),
            ("zh-TW", Some("zh-TW")),
            ("zh-Hant-HK", Some("zh-HK")),
            ("zh-MO", Some("zh-HK")),
            ("zh-SG", Some("zh-CN")),
            ("yue", Some("zh-HK")),
            ("cmn-Hans-CN", Some("zh-CN")),
            ("ja-JP-u-ca-japanese", Some("ja-JP")),
            ("xx", None),
            ("sw-KE", None),
            ("", None),
            ("deutsch", None),
            ("12-DE", None),
        ] {
            assert_eq!(say_language(locale).as_deref(), spoken, "{locale}");
        }
    }
}
