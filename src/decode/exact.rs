//! Exact non-negative integers for the digit loop `java_number` runs on large values.
//!
//! When the scaled values of `FloatingDecimal`'s digit loop do not fit a `long`, Java runs the
//! loop on `FDBigInteger`, whose arithmetic is exact: no wrapping, unlike the `int`/`long`
//! loop, whose overflows `java_number` must copy. So the same loop here needs integers that
//! are exact too. [`Exact`] is that face, with two bodies: `u128`, checked, which answers
//! `None` the moment a value would not fit, and [`Nat`], arbitrary precision, which the
//! caller falls back to then: in the JDK's test vectors, for doubles below about 1e-30 or
//! above about 1e54 (binary exponents under -101 or over 178). Only what the loop uses is
//! here: powers of 5 and 2, addition, times ten, and a quotient known to be below ten.

use std::cmp::Ordering;

/// Exact non-negative integers for the loop that FloatingDecimal runs on big integers.
pub(super) trait Exact: Sized + Clone + Ord {
    /// `times × 5^p5 × 2^p2`.
    fn pow52(p5: i32, p2: i32, times: u64) -> Option<Self>;
    fn add(&self, o: &Self) -> Option<Self>;
    fn mul10(&self) -> Option<Self>;
    /// `q = self / s` (known to be below 10), then `self = 10 × (self mod s)`.
    fn quo_rem_10(&mut self, s: &Self) -> Option<i64>;
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
        let q = *self / *s;
        *self = (*self % *s).checked_mul(10)?;
        Some(q as i64)
    }
}

/// A natural number in base 2^32, little-endian, for the values u128 cannot hold.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Nat(Vec<u32>);

/// The largest power of 5 in a limb: `pow52` multiplies by it, not by 5 a thousand times.
const FIVE_TO_13: u32 = 1_220_703_125;

impl Nat {
    fn trim(mut self) -> Self {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        self
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let x = u64::from(*limb) * u64::from(m) + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn shl(&self, bits: u32) -> Self {
        let (words, bits) = ((bits / 32) as usize, bits % 32);
        let mut v = vec![0u32; words];
        let mut carry = 0u32;
        for &limb in &self.0 {
            if bits == 0 {
                v.push(limb);
            } else {
                v.push((limb << bits) | carry);
                carry = limb >> (32 - bits);
            }
        }
        if carry != 0 {
            v.push(carry);
        }
        Nat(v).trim()
    }

    /// `self -= o`, for `o <= self`.
    fn sub(&mut self, o: &Self) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let x = i64::from(*limb) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(x < 0);
            *limb = (x + (borrow << 32)) as u32;
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
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
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }
}

impl Exact for Nat {
    fn pow52(p5: i32, p2: i32, times: u64) -> Option<Self> {
        let mut v = Nat(vec![times as u32, (times >> 32) as u32]).trim();
        let mut left = p5.max(0) as u32;
        while left >= 13 {
            v.mul_small(FIVE_TO_13);
            left -= 13;
        }
        v.mul_small(5u32.pow(left));
        Some(v.shl(p2 as u32))
    }
    fn add(&self, o: &Self) -> Option<Self> {
        let n = self.0.len().max(o.0.len());
        let mut carry = 0u64;
        let mut v = Vec::with_capacity(n + 1);
        for i in 0..n {
            let x = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(o.0.get(i).copied().unwrap_or(0))
                + carry;
            v.push(x as u32);
            carry = x >> 32;
        }
        v.push(carry as u32);
        Some(Nat(v).trim())
    }
    fn mul10(&self) -> Option<Self> {
        let mut v = self.clone();
        v.mul_small(10);
        Some(v)
    }
    fn quo_rem_10(&mut self, s: &Self) -> Option<i64> {
        let mut q = 0;
        while *self >= *s {
            self.sub(s);
            q += 1;
        }
        self.mul_small(10);
        Some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::{Exact, Nat};

    fn to_u128(n: &Nat) -> u128 {
        n.0.iter()
            .rev()
            .fold(0, |v, &limb| (v << 32) | u128::from(limb))
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
