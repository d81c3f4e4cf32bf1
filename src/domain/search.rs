//! The text a search looks in and its grams, one definition for both stores' search indexes (the
//! embedded store's postings in `store::embedded::grams`, the `search_grams` field of MongoDB
//! documents).
//!
//! A unit test's search text is its folded name, a newline, its folded description: a term (never
//! holding white space) occurs in the name or the description exactly when it occurs in this text.
//! A gram is a sequence of 1 to [`GRAM`] bytes of that text's UTF-8 holding no ASCII white space,
//! packed in a `u32` ([`key`]): a term occurs in a text only if every 3-byte gram of the term is a
//! gram of the text, and a term of up to three bytes is itself one gram. Over bytes, not
//! characters, so a term occurs in a text exactly when its bytes do, and keys never collide.

use super::query::fold_case;

/// The longest gram.
pub const GRAM: usize = 3;

/// What search looks in: `fold_case(name)`, a newline, `fold_case(description)`.
pub fn search_text(name: &str, description: &str) -> String {
    let mut text = fold_case(name);
    text.push('\n');
    text.push_str(&fold_case(description));
    text
}

/// ASCII white space, which no search term holds (`char::is_whitespace` covers all of these).
pub fn blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A gram of 1 to 3 bytes as a number: the bytes, and the length above them (so at most
/// `0x03ff_ffff`, which also fits an `i32`).
pub fn key(gram: &[u8]) -> u32 {
    debug_assert!((1..=GRAM).contains(&gram.len()));
    let packed = gram.iter().fold(0u32, |k, &b| (k << 8) | u32::from(b));
    ((gram.len() as u32) << 24) | packed
}

/// The grams of 1 to 3 bytes of `text` that hold no white space, repeats included.
pub fn grams(text: &str) -> impl Iterator<Item = u32> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len()).flat_map(move |start| {
        let end = (start + GRAM).min(bytes.len());
        // The grams starting here, up to the first white space.
        let clean = bytes[start..end]
            .iter()
            .position(|&b| blank(b))
            .unwrap_or(end - start);
        (1..=clean).map(move |len| key(&bytes[start..start + len]))
    })
}

/// The 3-byte grams of `text` that hold no white space, repeats included: for a term, what a text
/// holding it must hold.
pub fn trigrams(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.as_bytes()
        .windows(GRAM)
        .filter(|w| !w.iter().copied().any(blank))
        .map(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_are_bytes_without_white_space_and_trigrams_the_longest_of_them() {
        let text = search_text("Ab σ", "Ωx");
        assert_eq!(text, "ab σ\nωx");
        let all: Vec<u32> = grams(&text).collect();
        assert!(all.contains(&key(b"ab")));
        assert!(all.contains(&key("σ".as_bytes())));
        assert!(!all.contains(&key(b"b ")), "white space is never in a gram");
        let three: Vec<u32> = trigrams(&text).collect();
        // "ab σ" has no 3-byte run without the space but "σ" is two bytes: none from the name;
        // "ωx" is three bytes.
        assert_eq!(three, vec![key("ωx".as_bytes())]);
        assert!(three.iter().all(|k| all.contains(k)));
        assert_eq!(key(b"abc"), 0x0361_6263);
        assert!(key(&[0xff; 3]) <= i32::MAX as u32);
    }
}
