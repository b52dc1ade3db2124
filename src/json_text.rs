//! JSON text as Jackson 1.9's `Utf8Generator` writes it, which is what Avro 1.7.5's
//! `JsonEncoder` wrote for Kaa 0.9.0 and so what the original appender published: strings
//! escaped as Jackson escapes them, Avro strings decoded as JDK 8 decodes UTF-8, bytes as
//! ISO-8859-1 text or base64, integers. [`crate::decode`] writes records with it and
//! [`crate::header`] the record header; it depends on neither. (Floats and doubles, whose
//! text is Java's own, are `decode::java_number`'s.)

/// For each byte of valid UTF-8: 0 when written as is, else the character after the
/// backslash (`u` for the `\u00XX` form), or [`ASTRAL`] for the lead byte of a 4-byte sequence.
static ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut lead = 0xF0;
    while lead < 0x100 {
        t[lead] = ASTRAL;
        lead += 1;
    }
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Marks the lead byte of a character outside the BMP in [`ESCAPES`].
const ASTRAL: u8 = 0xFF;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(unit >> 12) as usize],
        HEX[((unit >> 8) & 0xF) as usize],
        HEX[((unit >> 4) & 0xF) as usize],
        HEX[(unit & 0xF) as usize],
    ]);
}

/// Whether any of eight bytes is below 0x20, `"`, `\\` or at least 0xF0 (the bytes that
/// [`ESCAPES`] marks), with the classic "has a zero byte" bit trick, which is exact about
/// whether there is one.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let astral = zero_byte((word & (ONES * 0xF0)) ^ (ONES * 0xF0));
    (control | quote | backslash | astral) != 0
}

/// Writes valid UTF-8 text as a JSON string, as Jackson 1.9's `Utf8Generator` does. Besides
/// the ASCII escapes, it writes every UTF-16 surrogate as a `\uXXXX` escape: a character
/// outside the Basic Multilingual Plane (an emoji) becomes an escaped surrogate pair such as
/// `\uD83D\uDE00`, never its 4-byte UTF-8 form. Everything else non-ASCII is raw UTF-8.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        if let Some(chunk) = text.get(i..i + 8) {
            // Eight bytes at a time while none of them needs attention.
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = text[i];
        let escape = ESCAPES[b as usize];
        if escape == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        if escape == ASTRAL {
            // A 4-byte sequence (the text is valid UTF-8).
            let c = (u32::from(b & 0x07) << 18)
                | (u32::from(text[i + 1] & 0x3F) << 12)
                | (u32::from(text[i + 2] & 0x3F) << 6)
                | u32::from(text[i + 3] & 0x3F);
            let c = c - 0x10000;
            write_u_escape(out, 0xD800 | (c >> 10) as u16);
            write_u_escape(out, 0xDC00 | (c & 0x3FF) as u16);
            i += 4;
        } else {
            if escape == b'u' {
                write_u_escape(out, u16::from(b));
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

pub(crate) fn json_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    write_json_str(&mut out, text.as_bytes());
    out
}

/// An Avro string: Java decodes its bytes as UTF-8 (`Utf8.toString()` is
/// `new String(bytes, "UTF-8")`) and Jackson writes the text back. Valid UTF-8 (the normal
/// case) goes straight through; anything else is decoded the way JDK 8 does it
/// ([`java_decode_utf8`]), which puts U+FFFD in other places than `String::from_utf8_lossy`.
pub(crate) fn write_utf8_string(out: &mut Vec<u8>, bytes: &[u8]) {
    if std::str::from_utf8(bytes).is_ok() {
        write_json_str(out, bytes);
    } else {
        write_json_utf16(out, &java_decode_utf8(bytes));
    }
}

/// JDK 8's `new String(bytes, "UTF-8")` (sun.nio.cs.UTF_8.Decoder.decode, the array decoder,
/// with malformed input replaced by U+FFFD), as UTF-16 code units. Only called for input that
/// is not valid UTF-8. It differs from `String::from_utf8_lossy` in places: an encoded
/// surrogate (`ED A0 80`) is one U+FFFD, not three; a lead byte followed by a bad byte
/// replaces one or two bytes by its own rules; and a sequence cut short at the very end of
/// the string stops the decoding after one U+FFFD.
pub(crate) fn java_decode_utf8(sa: &[u8]) -> Vec<u16> {
    const REPL: u16 = 0xFFFD;
    let cont = |b: u8| b & 0xC0 == 0x80;
    let sl = sa.len();
    let mut da: Vec<u16> = Vec::with_capacity(sl);
    let mut sp = 0;
    while sp < sl {
        let b1 = sa[sp];
        sp += 1;
        match b1 {
            0x00..=0x7F => da.push(u16::from(b1)),
            0xC2..=0xDF => {
                if sp < sl {
                    let b2 = sa[sp];
                    if cont(b2) {
                        da.push((u16::from(b1 & 0x1F) << 6) | u16::from(b2 & 0x3F));
                        sp += 1;
                    } else {
                        da.push(REPL);
                    }
                    continue;
                }
                da.push(REPL);
                return da;
            }
            0xE0..=0xEF => {
                if sp + 1 < sl {
                    let (b2, b3) = (sa[sp], sa[sp + 1]);
                    let bad_b2 = (b1 == 0xE0 && b2 & 0xE0 == 0x80) || !cont(b2);
                    if bad_b2 || !cont(b3) {
                        da.push(REPL);
                        // malformedN(3): the lead alone, or the lead and b2.
                        sp += if bad_b2 { 0 } else { 1 };
                    } else {
                        let c = (u16::from(b1 & 0x0F) << 12)
                            | (u16::from(b2 & 0x3F) << 6)
                            | u16::from(b3 & 0x3F);
                        da.push(if (0xD800..=0xDFFF).contains(&c) {
                            REPL
                        } else {
                            c
                        });
                        sp += 2;
                    }
                    continue;
                }
                if sp < sl && ((b1 == 0xE0 && sa[sp] & 0xE0 == 0x80) || !cont(sa[sp])) {
                    da.push(REPL);
                    continue;
                }
                da.push(REPL);
                return da;
            }
            0xF0..=0xF7 => {
                if sp + 2 < sl {
                    let (b2, b3, b4) = (sa[sp], sa[sp + 1], sa[sp + 2]);
                    let uc = (u32::from(b1 & 0x07) << 18)
                        | (u32::from(b2 & 0x3F) << 12)
                        | (u32::from(b3 & 0x3F) << 6)
                        | u32::from(b4 & 0x3F);
                    if !cont(b2) || !cont(b3) || !cont(b4) || !(0x10000..=0x10FFFF).contains(&uc) {
                        da.push(REPL);
                        // malformedN(4): how many bytes the replacement stands for.
                        let bad_b2 = b1 > 0xF4
                            || (b1 == 0xF0 && !(0x90..=0xBF).contains(&b2))
                            || (b1 == 0xF4 && b2 & 0xF0 != 0x80)
                            || !cont(b2);
                        sp += if bad_b2 {
                            0
                        } else if !cont(b3) {
                            1
                        } else {
                            2
                        };
                    } else {
                        let u = uc - 0x10000;
                        da.push(0xD800 | (u >> 10) as u16);
                        da.push(0xDC00 | (u & 0x3FF) as u16);
                        sp += 3;
                    }
                    continue;
                }
                // Fewer than three bytes after the lead: isMalformed4_2 as in later JDK 8
                // updates and in JDK 9+ (early JDK 8 builds lacked the `b1 > 0xf4` test and
                // compared the signed lead byte with 0xf0).
                if b1 > 0xF4
                    || (sp < sl
                        && ((b1 == 0xF0 && !(0x90..=0xBF).contains(&sa[sp]))
                            || (b1 == 0xF4 && sa[sp] & 0xF0 != 0x80)
                            || !cont(sa[sp])))
                {
                    da.push(REPL);
                    continue;
                }
                sp += 1;
                if sp < sl && !cont(sa[sp]) {
                    da.push(REPL);
                    continue;
                }
                da.push(REPL);
                return da;
            }
            _ => da.push(REPL),
        }
    }
    da
}

/// Writes Java text (UTF-16 code units, as decoded by [`java_decode_utf8`]) as Jackson does.
fn write_json_utf16(out: &mut Vec<u8>, units: &[u16]) {
    out.push(b'"');
    for &u in units {
        if u < 0x80 {
            match ESCAPES[u as usize] {
                0 => out.push(u as u8),
                b'u' => write_u_escape(out, u),
                escape => out.extend_from_slice(&[b'\\', escape]),
            }
        } else if u < 0x800 {
            out.extend_from_slice(&[0xC0 | (u >> 6) as u8, 0x80 | (u & 0x3F) as u8]);
        } else if (0xD800..=0xDFFF).contains(&u) {
            write_u_escape(out, u);
        } else {
            out.extend_from_slice(&[
                0xE0 | (u >> 12) as u8,
                0x80 | ((u >> 6) & 0x3F) as u8,
                0x80 | (u & 0x3F) as u8,
            ]);
        }
    }
    out.push(b'"');
}

/// Standard base64 (RFC 4648, with padding).
pub(crate) fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Avro bytes and fixed: JsonEncoder turns them into text as ISO-8859-1 (each byte one
/// code point U+0000..U+00FF), so a byte >= 0x80 comes out as two UTF-8 bytes.
pub(crate) fn write_latin1_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for &b in bytes {
        if b >= 0x80 {
            out.extend_from_slice(&[0xC0 | (b >> 6), 0x80 | (b & 0x3F)]);
        } else {
            match ESCAPES[b as usize] {
                0 => out.push(b),
                b'u' => write_u_escape(out, u16::from(b)),
                escape => out.extend_from_slice(&[b'\\', escape]),
            }
        }
    }
    out.push(b'"');
}

pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    // Left-aligned in a fixed block that is appended whole, then cut to length (see
    // `decode::java_number`'s write_java_layout: fixed-size copies avoid a memcpy call per
    // number). The length comes from comparisons and the digits two at a time: a division per
    // digit, twice, was 5% of the CPU of one message per pack.
    let mut buf = [0u8; 24];
    let sign = usize::from(v < 0);
    buf[0] = b'-';
    let n = v.unsigned_abs();
    let len = sign + 1 + POW10.iter().take_while(|&&p| n >= p).count();
    put_digits(&mut buf, len, n);
    let start = out.len();
    out.extend_from_slice(&buf);
    out.truncate(start + len);
}

/// Puts `n`'s decimal digits into `buf` so that they end before `end`, two at a time, and
/// returns where they start.
pub(crate) fn put_digits(buf: &mut [u8], end: usize, mut n: u64) -> usize {
    let mut at = end;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[n as usize * 2..n as usize * 2 + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    at
}

/// 10 to 10^19: a number with k digits is at least the first k - 1 of them.
const POW10: [u64; 19] = {
    let mut p = [0u64; 19];
    let mut i = 0;
    let mut v = 10u64;
    while i < 19 {
        p[i] = v;
        v = v.wrapping_mul(10);
        i += 1;
    }
    p
};

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_at_a_time_scan_finds_every_byte_that_needs_attention() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    ESCAPES[byte as usize] != 0,
                    "byte {byte:#x} at {position}"
                );
            }
        }
    }

    #[test]
    fn integers_are_written_as_rust_formats_them() {
        let mut samples = vec![0, 1, 9, 10, 99, 100, 101, i64::MIN, i64::MAX, -1, -10];
        for k in 0..19 {
            let p = 10i64.pow(k);
            samples.extend([p - 1, p, p + 1, -p, -(p - 1)]);
        }
        for v in samples {
            let mut out = b"x".to_vec();
            write_i64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
        }
    }

    #[test]
    fn base64_pads_every_length() {
        let b64 = |b: &[u8]| {
            let mut out = Vec::new();
            write_base64(&mut out, b);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foob"), "Zm9vYg==");
    }
}
