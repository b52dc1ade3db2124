//! Numbers as Java 8's `Double.toString` / `Float.toString` print them: the digits and their
//! layout.
//!
//! Avro 1.7.5's JsonEncoder writes numbers through Jackson 1.x, which calls these, so the
//! original appender's payloads carry their text. The layout is Java's: plain decimal for
//! 1e-3 <= |d| < 1e7 with at least one digit after the point, otherwise `d.dddE[-]n`
//! ([`write_java_layout`]). Up to JDK 18 the digits come from
//! `FloatingDecimal`'s `dtoa`: an easy path for integers below 2^63, then a Steele & White
//! digit loop with a *symmetric* stopping test (half an ulp on both sides, a quarter below
//! exact powers of two), which is not always the shortest round-trip form (`1.0E23` prints
//! `9.999999999999999E22`, `Float.MIN_NORMAL` prints `1.17549435E-38`). This module
//! reproduces that behaviour step by step, including its integer-overflow corners and the
//! carry that leaves trailing zeros, from the algorithm's description; the tests compare
//! it with values the JDK printed. Where Java's loop runs on `FDBigInteger`, the exact
//! integers it needs are `super::exact`'s.

use std::cmp::Ordering;

use super::exact::{digit_quo_rem, Exact, Nat};
use crate::json_text::put_digits;

/// Writes a double as Jackson does: `Double.toString(d)` raw, or NaN and the infinities as
/// JSON strings (`QUOTE_NON_NUMERIC_NUMBERS`, on by default). The digits are JDK 8's
/// ([`double_digits`]), the layout Java's: plain decimal for 1e-3 <= |d| < 1e7 with at least
/// one digit after the point, otherwise `d.dddE[-]n`.
pub(super) fn write_java_double(out: &mut Vec<u8>, d: f64) {
    let (nan, infinite, zero) = (d.is_nan(), d.is_infinite(), d == 0.0);
    write_java_number(out, nan, infinite, zero, d.is_sign_negative(), || {
        double_digits(d)
    });
}

/// Writes a float as Jackson does: `Float.toString(f)`; see [`write_java_double`].
pub(super) fn write_java_float(out: &mut Vec<u8>, f: f32) {
    let (nan, infinite, zero) = (f.is_nan(), f.is_infinite(), f == 0.0);
    write_java_number(out, nan, infinite, zero, f.is_sign_negative(), || {
        float_digits(f)
    });
}

fn write_java_number(
    out: &mut Vec<u8>,
    nan: bool,
    infinite: bool,
    zero: bool,
    negative: bool,
    digits: impl FnOnce() -> Decimal,
) {
    if write_non_finite(out, nan, infinite, negative) {
        return;
    }
    if negative {
        out.push(b'-');
    }
    match if zero {
        Decimal::Digits(Digits::ZERO)
    } else {
        digits()
    } {
        Decimal::Short { scaled, places } => write_short(out, scaled, places),
        Decimal::Digits(d) => write_java_layout(out, &d),
    }
}

/// A number's digits as the digit loop gives them: most readings are short decimals
/// ([`short_decimal`]), written straight from the scaled integer.
enum Decimal {
    /// `scaled × 10^-places`, 1e-2 <= value < 1e6, `places` <= 6 and as few as read back.
    Short {
        scaled: u64,
        places: usize,
    },
    Digits(Digits),
}

/// A short decimal in Java's plain layout: the integer part, the point, and the `places`
/// digits after it (a `0` when there are none). Java prints every such value plain (it is
/// within 1e-3 <= v < 1e7), with exactly these digits (they are the fewest that read back).
/// Like [`write_java_layout`], in fixed-size copies from a block of `'0'`s, cut to length; the
/// digits two at a time (one at a time, they were a fifth of decoding records of 4 KiB, which
/// are mostly such numbers).
fn write_short(out: &mut Vec<u8>, scaled: u64, places: usize) {
    // The digits end at 16; the `'0'`s before them are the zeros of "0.05", those after them
    // the place of "21.0".
    let mut digits = [b'0'; 32];
    let at = put_digits(&mut digits, 16, scaled);
    // At least one digit before the point, and at most 6 (below 1e6), as places are.
    let first = at.min(15 - places);
    let int_digits = 16 - places - first;
    let start = out.len();
    out.extend_from_slice(&[b'0'; 16]);
    let buf = &mut out[start..];
    buf[..8].copy_from_slice(&digits[first..first + 8]);
    buf[int_digits] = b'.';
    buf[int_digits + 1..int_digits + 9].copy_from_slice(&digits[16 - places..24 - places]);
    out.truncate(start + int_digits + 1 + places.max(1));
}

/// NaN and the infinities, as Jackson quotes them; false for a finite value.
fn write_non_finite(out: &mut Vec<u8>, nan: bool, infinite: bool, negative: bool) -> bool {
    let text: &[u8] = if nan {
        b"\"NaN\""
    } else if infinite {
        if negative {
            b"\"-Infinity\""
        } else {
            b"\"Infinity\""
        }
    } else {
        return false;
    };
    out.extend_from_slice(text);
    true
}

/// The decimal digits of a positive number as characters (`len` of them; 0 for zero), padded
/// with `'0'`, and the exponent `exp` such that the number is `0.d1d2d3... × 10^exp`. Padded
/// characters let the layout be a few fixed-size copies, with no arithmetic per digit.
struct Digits {
    chars: [u8; DIGIT_CHARS],
    len: usize,
    exp: i32,
}

/// Room for the 19 digits kept and the padding the layout's fixed-size copies read.
const DIGIT_CHARS: usize = 32;

impl Digits {
    const ZERO: Digits = Digits {
        chars: [b'0'; DIGIT_CHARS],
        len: 0,
        exp: 0,
    };
}

/// `BinaryToASCIIBuffer.getChars` for a non-negative value (the sign is already written).
///
/// The characters go in fixed-size blocks straight into a block of `'0'`s appended to `out`,
/// which is cut to length afterwards: variable-length copies of a few bytes would each cost
/// a `memcpy` call, and a stack buffer copied out whole stalls on reading back the bytes just
/// written (store forwarding fails); either used to dominate this function.
fn write_java_layout(out: &mut Vec<u8>, d: &Digits) {
    if d.len == 0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    // At most 19 digits, 7 zeros and `.0`, or 19 digits and `.E-324`.
    let start = out.len();
    out.extend_from_slice(&[b'0'; 32]);
    let buf = &mut out[start..];
    let n = d.len;
    let e = d.exp;
    let c = &d.chars;
    let mut len = if e > 0 && e < 8 {
        // 1 <= x < 1e7: plain; the padding supplies the zeros before the point and the '0'
        // after it when there are no more digits.
        let e = e as usize;
        buf[..8].copy_from_slice(&c[..8]);
        buf[e + 1..e + 25].copy_from_slice(&c[e..e + 24]);
        buf[e] = b'.';
        n.max(e) + 1 + usize::from(n <= e)
    } else if e <= 0 && e > -3 {
        // 1e-3 <= x < 1: "0.", -e zeros, the digits.
        let zeros = (-e) as usize;
        buf[1] = b'.';
        buf[2 + zeros..26 + zeros].copy_from_slice(&c[..24]);
        2 + zeros + n
    } else {
        // d.ddddE[-]x, at least one digit after the point.
        buf[0] = c[0];
        buf[1] = b'.';
        buf[2..26].copy_from_slice(&c[1..25]);
        n.max(2) + 1
    };
    if !(e > -3 && e < 8) {
        buf[len] = b'E';
        len += 1;
        let mut exp = e - 1;
        if exp < 0 {
            buf[len] = b'-';
            len += 1;
            exp = -exp;
        }
        let exp = exp as u32;
        if exp >= 100 {
            buf[len] = b'0' + (exp / 100) as u8;
            len += 1;
        }
        if exp >= 10 {
            buf[len] = b'0' + (exp / 10 % 10) as u8;
            len += 1;
        }
        buf[len] = b'0' + (exp % 10) as u8;
        len += 1;
    }
    out.truncate(start + len);
}

const EXP_SHIFT: i32 = 52;
/// Bits of 5^i, for i < 27.
const N_5_BITS: [i32; 27] = [
    0, 3, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33, 35, 38, 40, 42, 45, 47, 49, 52, 54, 56,
    59, 61,
];
/// Decimal digits of 2^i beyond the first, which an integer of that size cannot vouch for.
const INSIGNIFICANT_DIGITS: [u32; 64] = [
    0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9,
    9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15, 15, 16, 16,
    16, 17, 17, 17, 18, 18, 18, 19,
];

fn pow5_u64(n: i32) -> u64 {
    5u64.pow(n as u32)
}

/// The digits of a finite, non-zero double (its sign is ignored).
fn double_digits(d: f64) -> Decimal {
    let d = d.abs();
    if let Some(short) = short_decimal(d, MAX_DOUBLE_SHORT, |r, scale| r as f64 / scale == d) {
        return short;
    }
    let bits = d.to_bits();
    let mut fract = bits & ((1 << 52) - 1);
    let exp_field = ((bits >> 52) & 0x7FF) as i32;
    let (bin_exp, significant) = if exp_field == 0 {
        let leading = fract.leading_zeros() as i32;
        let shift = leading - (63 - EXP_SHIFT);
        fract <<= shift;
        (1 - shift, 64 - leading)
    } else {
        fract |= 1 << 52;
        (exp_field, EXP_SHIFT + 1)
    };
    Decimal::Digits(dtoa(bin_exp - 1023, fract, significant))
}

/// Most readings are short decimals (`21.5`, `1013.25`), and for those the digit loop's answer
/// is known without running it: it stops at the shortest decimal that reads back as `v`.
/// Within 1e-2 <= v < 1e6 Java prints `v` plain and its rule of two digits before stopping
/// (exponent form) never applies; with at most six places and `max` as the scaled value (so
/// at most 12 significant digits for a double, 6 for a float), half an ulp is far below one
/// unit of the last digit, so no shorter prefix of `v`'s expansion is within half an ulp of
/// it and only one decimal of that length is. The search by scaling is exact: `reads_back`
/// divides `r` by `10^p` in `v`'s own precision, correctly rounded, so it gives `v` just when
/// `r × 10^-p` reads back as `v`.
fn short_decimal(v: f64, max: i64, reads_back: impl Fn(i64, f64) -> bool) -> Option<Decimal> {
    if !(1e-2..1e6).contains(&v) {
        return None;
    }
    let mut scale = 1.0;
    for places in 0..=6usize {
        // Rounding half up is enough: when a decimal with `places` places reads back as `v`,
        // `v × scale` lies within a tiny fraction of it, far from a half.
        let r = (v * scale + 0.5) as i64;
        if r > max {
            return None;
        }
        if reads_back(r, scale) {
            return Some(Decimal::Short {
                scaled: r as u64,
                places,
            });
        }
        scale *= 10.0;
    }
    None
}

/// Scaled values a double's shortcut takes: below 1e6 with six places, so no limit of its own.
const MAX_DOUBLE_SHORT: i64 = i64::MAX;
/// A float's: six significant digits at most (half a float ulp is up to 6e-8 of the value).
const MAX_FLOAT_SHORT: i64 = 999_999;

/// The digits of a finite, non-zero float (its sign is ignored).
fn float_digits(f: f32) -> Decimal {
    let f = f.abs();
    let short = short_decimal(f64::from(f), MAX_FLOAT_SHORT, |r, scale| {
        r as f32 / scale as f32 == f
    });
    if let Some(digits) = short {
        return digits;
    }
    let bits = f.to_bits();
    let mut fract = bits & 0x7F_FFFF;
    let exp_field = ((bits >> 23) & 0xFF) as i32;
    let (bin_exp, significant) = if exp_field == 0 {
        let leading = fract.leading_zeros() as i32;
        let shift = leading - (31 - 23);
        fract <<= shift;
        (1 - shift, 32 - leading)
    } else {
        fract |= 1 << 23;
        (exp_field, 24)
    };
    Decimal::Digits(dtoa(
        bin_exp - 127,
        u64::from(fract) << (EXP_SHIFT - 23),
        significant,
    ))
}

/// Digits kept: what fits a `long`, as the integer form of these digits used to be.
const MAX_DIGITS: usize = 19;

/// How `dtoa` builds its digits, possibly with trailing zeros after a carry.
impl Digits {
    fn push(&mut self, digit: i64) {
        if self.len < 24 {
            self.chars[self.len] = b'0' + digit as u8;
            self.len += 1;
        }
    }

    /// Rounds the last digit up; a carry out of the first digit leaves `1` followed by the
    /// zeros the nines became, one decimal place higher.
    fn round_up(&mut self) {
        if self.len == 0 {
            return;
        }
        let mut i = self.len - 1;
        while self.chars[i] == b'9' && i > 0 {
            self.chars[i] = b'0';
            i -= 1;
        }
        if self.chars[i] == b'9' {
            self.exp += 1;
            self.chars[0] = b'1';
        } else {
            self.chars[i] += 1;
        }
    }

    fn keep_max_digits(mut self) -> Digits {
        if self.len > MAX_DIGITS {
            self.chars[MAX_DIGITS..].fill(b'0');
            self.len = MAX_DIGITS;
        }
        self
    }
}

/// `fract` holds the significand with its leading one at bit 52; the value is
/// `fract × 2^(bin_exp - 52)` and has `significant` bits of precision.
fn dtoa(bin_exp: i32, fract: u64, significant: i32) -> Digits {
    let tail_zeros = fract.trailing_zeros() as i32;
    let fract_bits = EXP_SHIFT + 1 - tail_zeros;
    let tiny_bits = (fract_bits - bin_exp - 1).max(0);

    if (-21..=62).contains(&bin_exp) && tiny_bits == 0 {
        // An integer below 2^63: its own digits, less those its precision cannot vouch for.
        let insignificant = if bin_exp > significant {
            let p2 = bin_exp - significant - 1;
            if p2 > 1 && p2 < 64 {
                INSIGNIFICANT_DIGITS[p2 as usize]
            } else {
                0
            }
        } else {
            0
        };
        let value = if bin_exp >= EXP_SHIFT {
            fract << (bin_exp - EXP_SHIFT)
        } else {
            fract >> (EXP_SHIFT - bin_exp)
        };
        return long_digits(value, insignificant);
    }

    // B / S is the value scaled into [1, 10) by 10^dec_exp; M is half an ulp, scaled alike.
    let mut dec_exp = estimate_dec_exp(fract, bin_exp);
    let b5 = (-dec_exp).max(0);
    let mut b2 = b5 + tiny_bits + bin_exp;
    let s5 = dec_exp.max(0);
    let mut s2 = s5 + tiny_bits;
    let m5 = b5;
    let mut m2 = b2 - significant;

    let fract = fract >> tail_zeros;
    b2 -= fract_bits - 1;
    let common = b2.min(s2);
    b2 -= common;
    s2 -= common;
    m2 -= common;
    if fract_bits == 1 {
        // An exact power of two: the next smaller value is only half as far.
        m2 -= 1;
    }
    if m2 < 0 {
        b2 -= m2;
        s2 -= m2;
        m2 = 0;
    }

    let b_bits = fract_bits
        + b2
        + if b5 < 27 {
            N_5_BITS[b5 as usize]
        } else {
            b5 * 3
        };
    let ten_s_bits = s2
        + 1
        + if s5 + 1 < 27 {
            N_5_BITS[(s5 + 1) as usize]
        } else {
            (s5 + 1) * 3
        };

    let mut out = Digits::ZERO;
    let (low, high, low_digit_difference) = if b_bits < 64 && ten_s_bits < 64 {
        if b_bits < 32 && ten_s_bits < 32 {
            small_loop::<i32>(&mut out, &mut dec_exp, fract, (b5, b2), (s5, s2), (m5, m2))
        } else {
            small_loop::<i64>(&mut out, &mut dec_exp, fract, (b5, b2), (s5, s2), (m5, m2))
        }
    } else {
        let estimate = dec_exp;
        match big_loop::<u128>(&mut out, &mut dec_exp, fract, (b5, b2), (s5, s2), (m5, m2)) {
            Some(result) => result,
            None => {
                // Too large for u128: start over on arbitrary precision.
                out = Digits::ZERO;
                dec_exp = estimate;
                big_loop::<Nat>(&mut out, &mut dec_exp, fract, (b5, b2), (s5, s2), (m5, m2))
                    .unwrap_or((true, false, 0))
            }
        }
    };
    out.exp = dec_exp + 1;
    let last_odd = out.len > 0 && out.chars[out.len - 1] & 1 != 0;
    let tie_up = low_digit_difference > 0 || (low_digit_difference == 0 && last_odd);
    if high && (!low || tie_up) {
        out.round_up();
    }
    out.keep_max_digits()
}

/// `floor(log10(value))`, estimated the way FloatingDecimal does (it may be one too small).
// The constants are FloatingDecimal's own, not log10(2) to full precision: the estimate (and
// so the digits) must be Java's.
#[allow(clippy::approx_constant)]
fn estimate_dec_exp(fract: u64, bin_exp: i32) -> i32 {
    let d2 = f64::from_bits(0x3FF0_0000_0000_0000 | (fract & ((1 << 52) - 1)));
    let d = (d2 - 1.5) * 0.289529654 + 0.176091259 + f64::from(bin_exp) * 0.301029995663981;
    d.floor() as i32
}

/// The integer's digits after rounding away `insignificant` low digits (developLongDigits).
fn long_digits(mut value: u64, insignificant: u32) -> Digits {
    let mut exp = 0;
    if insignificant != 0 {
        let pow10 = 10u64.pow(insignificant);
        let residue = value % pow10;
        value /= pow10;
        exp += insignificant as i32;
        if residue >= pow10 >> 1 {
            value += 1;
        }
    }
    while value.is_multiple_of(10) {
        value /= 10;
        exp += 1;
    }
    let mut len = 1;
    let mut rest = value / 10;
    while rest != 0 {
        rest /= 10;
        len += 1;
    }
    let mut chars = [b'0'; DIGIT_CHARS];
    for slot in chars[..len].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    Digits {
        chars,
        len,
        exp: exp + len as i32,
    }
}

/// Java's `int` and `long` with their wrapping arithmetic: the digit loop on machine words
/// overflows in corner cases, and what Java prints then is what the wrapped values give.
trait Word: Copy + Ord {
    const ZERO: Self;
    fn from_u64(v: u64) -> Self;
    fn pow5(n: i32) -> Self;
    fn shl(self, n: i32) -> Self;
    fn mul(self, o: Self) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `(self / s, self % s)` as Java's wrapping `/` and `%` give them.
    fn quo_rem(self, s: Self) -> (Self, Self);
    fn ten() -> Self;
    fn to_i64(self) -> i64;
}

macro_rules! word {
    ($t:ty) => {
        impl Word for $t {
            const ZERO: Self = 0;
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            fn pow5(n: i32) -> Self {
                pow5_u64(n) as $t
            }
            fn shl(self, n: i32) -> Self {
                self.wrapping_shl(n as u32)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn quo_rem(self, s: Self) -> (Self, Self) {
                digit_quo_rem(self, s)
                    .unwrap_or_else(|| (self.wrapping_div(s), self.wrapping_rem(s)))
            }
            fn ten() -> Self {
                10
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
        }
    };
}
word!(i32);
word!(i64);

type Scale = (i32, i32);

/// The digit loop on `int`s or `long`s; returns (low, high, lowDigitDifference).
fn small_loop<W: Word>(
    out: &mut Digits,
    dec_exp: &mut i32,
    fract: u64,
    (b5, b2): Scale,
    (s5, s2): Scale,
    (m5, m2): Scale,
) -> (bool, bool, i64) {
    let mut b = W::from_u64(fract).mul(W::pow5(b5)).shl(b2);
    let s = W::pow5(s5).shl(s2);
    let mut m = W::pow5(m5).shl(m2);
    let tens = s.mul(W::ten());

    let (q, r) = b.quo_rem(s);
    b = W::ten().mul(r);
    m = m.mul(W::ten());
    let mut low = b < m;
    let mut high = b.add(m) > tens;
    if q == W::ZERO && !high {
        *dec_exp -= 1;
    } else {
        out.push(q.to_i64());
    }
    // Java always shows a digit after the point, so E-form needs a second digit.
    if *dec_exp < -3 || *dec_exp >= 8 {
        low = false;
        high = false;
    }
    while !low && !high {
        let (q, r) = b.quo_rem(s);
        b = W::ten().mul(r);
        m = m.mul(W::ten());
        if m > W::ZERO {
            low = b < m;
            high = b.add(m) > tens;
        } else {
            // m overflowed: Java takes it as certainly larger than b.
            low = true;
            high = true;
        }
        out.push(q.to_i64());
    }
    (low, high, b.shl(1).sub(tens).to_i64())
}

/// The digit loop on exact integers; `None` if `N` cannot hold the values.
fn big_loop<N: Exact>(
    out: &mut Digits,
    dec_exp: &mut i32,
    fract: u64,
    (b5, b2): Scale,
    (s5, s2): Scale,
    (m5, m2): Scale,
) -> Option<(bool, bool, i64)> {
    let s = N::pow52(s5, s2, 1)?;
    let mut b = N::pow52(b5, b2, fract)?;
    let mut m = N::pow52(m5 + 1, m2 + 1, 1)?;
    let ten_s = N::pow52(s5 + 1, s2 + 1, 1)?;

    let q = b.quo_rem_10(&s)?;
    let mut low = b < m;
    let mut high = b.add(&m)? >= ten_s;
    if q == 0 && !high {
        *dec_exp -= 1;
    } else {
        out.push(q);
    }
    if *dec_exp < -3 || *dec_exp >= 8 {
        low = false;
        high = false;
    }
    while !low && !high {
        let q = b.quo_rem_10(&s)?;
        m = m.mul10()?;
        low = b < m;
        high = b.add(&m)? >= ten_s;
        out.push(q);
    }
    let difference = if high && low {
        match b.add(&b)?.cmp(&ten_s) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    } else {
        0
    };
    Some((low, high, difference))
}
