//! Exact non-negative integers for the digit loop `java_number` runs on large values.
//!
//! When the scaled values of `FloatingDecimal`'s digit loop do not fit a `long`, Java runs the
//! loop on `FDBigInteger`, whose arithmetic is exact: no wrapping, unlike the `int`/`long`
//! loop, whose overflows `java_number` must copy. So the same loop here needs integers that
//! are exact too. [`Exact`] is that face, with two bodies: `u128`, checked, which answers
//! `None` the moment a value would not fit, and [`Nat`], large enough for any double, which the
//! caller falls back to then: in the JDK's test vectors, for doubles below about 1e-30 or
//! above about 1e54 (binary exponents under -101 or over 178). Only what the loop uses is
//! here: powers of 5 and 2, addition, times ten, and a quotient known to be below ten.

use std::cmp::Ordering;
use std::ops::{Shl, Shr, Sub};

/// Exact non-negative integers for the loop that FloatingDecimal runs on big integers.
pub(super) trait Exact: Sized + Clone + Ord {
    /// `times × 5^p5 × 2^p2`.
    fn pow52(p5: i32, p2: i32, times: u64) -> Option<Self>;
    fn add(&self, o: &Self) -> Option<Self>;
    fn mul10(&self) -> Option<Self>;
    /// `q = self / s` (known to be below 10), then `self = 10 × (self mod s)`.
    fn quo_rem_10(&mut self, s: &Self) -> Option<i64>;
}

/// `(b / s, b % s)` for a quotient below 16 (a digit of the loop), by four steps of compare
/// and subtract; `None` where the values do not allow it (negative, wrapped, or `s × 16` out
/// of range). A division per digit was 40% of the digit loop's time on 64-bit words (its
/// latency), and on `u128` a call into compiler-rt: doubles of 1e-3 to 1e-8 at full precision
/// decoded 1.15 times as fast without it (3.25 M to 3.7 M a second).
pub(super) fn digit_quo_rem<T>(b: T, s: T) -> Option<(T, T)>
where
    T: Copy + Ord + From<u8> + Shl<u32, Output = T> + Shr<u32, Output = T> + Sub<Output = T>,
{
    let zero = T::from(0);
    if !(b >= zero && s > zero && (s << 4) >> 4 == s && b < s << 4) {
        return None;
    }
    let (mut q, mut r) = (0u8, b);
    for k in (0..4).rev() {
        if r >= s << k {
            r = r - (s << k);
            q |= 1 << k;
        }
    }
    Some((T::from(q), r))
}

impl Exact for u128 {
    fn pow52(p5: i32, p2: i32, times: u64) -> Option<Self> {
        let mut v = u128::from(times);
        for _ in 0..p5 {
            v = v.checked_mul(5)?;
        }
        if p2 >= 128 || (p2 > 0 && v.leading_zeros() < p2 as u32) {
            return None;
        }
        Some(v << p2)
    }
    fn add(&self, o: &Self) -> Option<Self> {
        self.checked_add(*o)
    }
    fn mul10(&self) -> Option<Self> {
        self.checked_mul(10)
    }
    fn quo_rem_10(&mut self, s: &Self) -> Option<i64> {
        // Past what four steps take, the division, a call into compiler-rt.
        let (q, r) = digit_quo_rem(*self, *s).unwrap_or_else(|| (*self / *s, *self % *s));
        *self = r.checked_mul(10)?;
        Some(q as i64)
    }
}

/// A natural number in base 2^64, little-endian, for the values u128 cannot hold: at most
/// `LIMBS` limbs, on the stack, so the digit loop allocates nothing (on the heap it cost
/// 4 to 6 µs per extreme double; this, 1 to 2). A value past `LIMBS` answers `None`, as
/// `u128` does past its own size.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Nat {
    limbs: [u64; LIMBS],
    /// Limbs in use; the top one is never zero.
    len: usize,
}

/// The loop's largest values take 13 limbs (subnormals and values near `f64::MAX`; with 12,
/// `doubles_of_every_exponent_read_back` fails).
const LIMBS: usize = 16;

/// The largest power of 5 in a limb: `pow52` multiplies by it, not by 5 a thousand times.
const FIVE_TO_27: u64 = 7_450_580_596_923_828_125;

impl Nat {
    fn from_u64(v: u64) -> Self {
        let mut n = Nat {
            limbs: [0; LIMBS],
            len: 1,
        };
        n.limbs[0] = v;
        n.trim();
        n
    }

    fn trim(&mut self) {
        while self.len > 0 && self.limbs[self.len - 1] == 0 {
            self.len -= 1;
        }
    }

    fn mul_small(&mut self, m: u64) -> Option<()> {
        let mut carry = 0u128;
        for limb in &mut self.limbs[..self.len] {
            let x = u128::from(*limb) * u128::from(m) + carry;
            *limb = x as u64;
            carry = x >> 64;
        }
        if carry != 0 {
            *self.limbs.get_mut(self.len)? = carry as u64;
            self.len += 1;
        }
        self.trim();
        Some(())
    }

    fn shl(&mut self, bits: u32) -> Option<()> {
        if self.len == 0 {
            return Some(());
        }
        let (words, bits) = ((bits / 64) as usize, bits % 64);
        let top = self.limbs[self.len - 1];
        let grows = bits != 0 && top >> (64 - bits) != 0;
        let len = self.len + words + usize::from(grows);
        if len > LIMBS {
            return None;
        }
        for i in (0..len).rev() {
            let at = |j: usize| if j < self.len { self.limbs[j] } else { 0 };
            let high = i.checked_sub(words).map_or(0, at);
            let low = i.checked_sub(words + 1).map_or(0, at);
            self.limbs[i] = if bits == 0 {
                high
            } else {
                (high << bits) | (low >> (64 - bits))
            };
        }
        self.len = len;
        Some(())
    }

    /// `self -= q × s`, for `q × s <= self`.
    fn sub_times(&mut self, s: &Self, q: u64) {
        let (mut carry, mut borrow) = (0u128, false);
        for i in 0..self.len {
            let product = u128::from(s.limbs.get(i).copied().unwrap_or(0)) * u128::from(q) + carry;
            carry = product >> 64;
            let (x, b1) = self.limbs[i].overflowing_sub(product as u64);
            let (x, b2) = x.overflowing_sub(u64::from(borrow));
            self.limbs[i] = x;
            borrow = b1 || b2;
        }
        self.trim();
    }

    /// The value's bits from `shift` up, for a value below 2^(shift + 128).
    fn bits_from(&self, shift: usize) -> u128 {
        let (word, bits) = (shift / 64, (shift % 64) as u32);
        let at = |j: usize| u128::from(if j < self.len { self.limbs[j] } else { 0 });
        let low = at(word) | (at(word + 1) << 64);
        if bits == 0 {
            low
        } else {
            (low >> bits) | (at(word + 2) << (128 - bits))
        }
    }

    fn bit_len(&self) -> usize {
        match self.len {
            0 => 0,
            n => 64 * n - self.limbs[n - 1].leading_zeros() as usize,
        }
    }
}

impl PartialOrd for Nat {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Nat {
    fn cmp(&self, o: &Self) -> Ordering {
        self.len.cmp(&o.len).then_with(|| {
            self.limbs[..self.len]
                .iter()
                .rev()
                .cmp(o.limbs[..o.len].iter().rev())
        })
    }
}

impl Exact for Nat {
    fn pow52(p5: i32, p2: i32, times: u64) -> Option<Self> {
        let mut v = Nat::from_u64(times);
        let mut left = p5.max(0) as u32;
        while left >= 27 {
            v.mul_small(FIVE_TO_27)?;
            left -= 27;
        }
        v.mul_small(5u64.pow(left))?;
        v.shl(p2.max(0) as u32)?;
        Some(v)
    }
    fn add(&self, o: &Self) -> Option<Self> {
        let mut v = self.clone();
        let n = self.len.max(o.len);
        let mut carry = false;
        for i in 0..n {
            let (x, c1) = v.limbs[i].overflowing_add(if i < o.len { o.limbs[i] } else { 0 });
            let (x, c2) = x.overflowing_add(u64::from(carry));
            v.limbs[i] = x;
            carry = c1 || c2;
        }
        v.len = n;
        if carry {
            *v.limbs.get_mut(n)? = 1;
            v.len += 1;
        }
        Some(v)
    }
    fn mul10(&self) -> Option<Self> {
        let mut v = self.clone();
        v.mul_small(10)?;
        Some(v)
    }
    /// The quotient from the top bits of both (at most one short), then exact.
    fn quo_rem_10(&mut self, s: &Self) -> Option<i64> {
        let shift = s.bit_len().saturating_sub(64);
        // Both in a u64, the divisor's top bit 59 (so the estimate is at most one short).
        let top = |n: &Self| (n.bits_from(shift) >> 4) as u64;
        let mut q = (top(self) / (top(s) + 1)).min(9);
        self.sub_times(s, q);
        while *self >= *s {
            self.sub_times(s, 1);
            q += 1;
        }
        self.mul_small(10)?;
        Some(q as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::{digit_quo_rem, Exact, Nat};

    /// The steps give the division's answer wherever they answer, and leave it to the division
    /// where a quotient could pass 15 or a value is out of their range.
    #[test]
    fn a_digit_by_steps_is_the_divisions() {
        for s in [1i64, 3, 7, 10, 999, 1 << 40, i64::MAX >> 4] {
            for b in (0..16).flat_map(|q| [q * s, q * s + s / 2, q * s + s - 1]) {
                assert_eq!(digit_quo_rem(b, s), Some((b / s, b % s)), "{b} / {s}");
            }
            assert_eq!(digit_quo_rem(16 * s, s), None, "a quotient of 16");
        }
        assert_eq!(
            digit_quo_rem(5i64, (i64::MAX >> 4) + 1),
            None,
            "s × 16 wraps"
        );
        assert_eq!(digit_quo_rem(-7i32, 3), None, "a wrapped b");
        assert_eq!(digit_quo_rem(7i32, -3), None, "a wrapped s");
        assert_eq!(digit_quo_rem(7i32, 0), None);
        let s = u128::MAX >> 4;
        assert_eq!(digit_quo_rem(9 * s + 1, s), Some((9, 1)));
        assert_eq!(digit_quo_rem(1, s + 1), None, "s × 16 past u128");
    }

    fn to_u128(n: &Nat) -> u128 {
        n.limbs[..n.len]
            .iter()
            .rev()
            .fold(0, |v, &limb| (v << 64) | u128::from(limb))
    }

    /// Where both can hold the values, `Nat` answers as `u128` does: `java_number` starts
    /// over on `Nat` after `u128` gives up, and must get the digits it would have had.
    #[test]
    fn nat_agrees_with_u128() {
        for (p5, p2, times) in [
            (0, 0, 1),
            (3, 7, 12345),
            (20, 30, 0xF_FFFF_FFFF),
            (27, 0, 9),
        ] {
            // A divisor that keeps every quotient below ten, as the digit loop's does.
            let divisor = times / 7 + 1;
            let fits = "these values fit a u128";
            let mut a = u128::pow52(p5, p2, times).expect(fits);
            let s_a = u128::pow52(p5, p2, divisor).expect(fits);
            let mut b = Nat::pow52(p5, p2, times).expect("Nat holds any value");
            let s_b = Nat::pow52(p5, p2, divisor).expect("Nat holds any value");
            assert_eq!(to_u128(&b), a);
            assert_eq!(to_u128(&b.add(&s_b).unwrap()), a.add(&s_a).unwrap());
            assert_eq!(to_u128(&b.mul10().unwrap()), a.mul10().unwrap());
            for _ in 0..5 {
                assert_eq!(b.quo_rem_10(&s_b), a.quo_rem_10(&s_a));
                assert_eq!(to_u128(&b), a);
            }
        }
    }
}
