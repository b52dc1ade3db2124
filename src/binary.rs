//! Reading the Avro binary encoding: the primitives that both the config record and the
//! log records are made of. Every read is bounds-checked; malformed input is an error,
//! never a panic or an unbounded allocation.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// The input ended inside a value.
    Truncated,
    /// A varint longer than ten bytes, or one that does not fit its type.
    BadVarint,
    /// A negative or impossibly large length.
    BadLength(i64),
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::Truncated => write!(f, "input ends inside a value"),
            BinaryError::BadVarint => write!(f, "malformed variable-length integer"),
            BinaryError::BadLength(n) => write!(f, "invalid length {n}"),
        }
    }
}

impl std::error::Error for BinaryError {}

/// A cursor over one Avro-encoded datum.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BinaryError> {
        if n > self.remaining() {
            return Err(BinaryError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn read_long(&mut self) -> Result<i64, BinaryError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.take(1)?.first().ok_or(BinaryError::Truncated)?;
            if shift == 63 && byte > 1 {
                return Err(BinaryError::BadVarint);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag: the low bit is the sign.
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(BinaryError::BadVarint)
    }

    pub fn read_int(&mut self) -> Result<i32, BinaryError> {
        i32::try_from(self.read_long()?).map_err(|_| BinaryError::BadVarint)
    }

    /// Any byte but 1 is false, as Avro 1.7.5 reads it: the Kaa C SDK writes a C boolean's
    /// byte as it is (a GPIO bit, -1), and the original appender published those.
    pub fn read_boolean(&mut self) -> Result<bool, BinaryError> {
        Ok(self.take(1)?[0] == 1)
    }

    pub fn read_float(&mut self) -> Result<f32, BinaryError> {
        let bytes = self.take(4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn read_double(&mut self) -> Result<f64, BinaryError> {
        let mut le = [0u8; 8];
        le.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(le))
    }

    /// A length prefix (bytes, strings, block counts' byte sizes), checked against the input
    /// that is left so a hostile length cannot make us allocate.
    fn read_len(&mut self) -> Result<usize, BinaryError> {
        let n = self.read_long()?;
        if n < 0 || n as u64 > self.remaining() as u64 {
            return Err(BinaryError::BadLength(n));
        }
        Ok(n as usize)
    }

    pub fn read_bytes(&mut self) -> Result<&'a [u8], BinaryError> {
        let n = self.read_len()?;
        self.take(n)
    }

    /// A string's raw UTF-8 bytes (not validated: callers decide how to treat bad UTF-8).
    pub fn read_string_bytes(&mut self) -> Result<&'a [u8], BinaryError> {
        self.read_bytes()
    }

    pub fn read_fixed(&mut self, size: usize) -> Result<&'a [u8], BinaryError> {
        self.take(size)
    }

    /// The item count of the next array or map block. A negative count is followed by the
    /// block's byte size, which we do not need; the count's absolute value is returned.
    pub fn read_block_count(&mut self) -> Result<usize, BinaryError> {
        let n = self.read_long()?;
        if n >= 0 {
            return Ok(n as usize);
        }
        self.read_long()?;
        n.checked_neg()
            .map(|n| n as usize)
            .ok_or(BinaryError::BadLength(n))
    }
}

/// Appends `v` in Avro's zig-zag variable-length encoding (int, long, counts, lengths).
pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_longs() {
        let cases: &[(&[u8], i64)] = &[
            (&[0x00], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x7f], -64),
            (&[0x80, 0x01], 64),
            (
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MAX,
            ),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MIN,
            ),
        ];
        for (bytes, want) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.read_long().unwrap(), *want, "{bytes:?}");
            assert!(r.is_empty());
            let mut written = Vec::new();
            write_long(&mut written, *want);
            assert_eq!(&written[..], *bytes);
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let mut r = Reader::new(&[0xff; 11]);
        assert_eq!(r.read_long(), Err(BinaryError::BadVarint));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(r.read_long(), Err(BinaryError::BadVarint));
    }

    #[test]
    fn int_out_of_range_is_an_error() {
        // zig-zag 2^32 does not fit an int
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x20]);
        assert_eq!(r.read_int(), Err(BinaryError::BadVarint));
    }

    #[test]
    fn hostile_length_does_not_allocate() {
        // length 2^40 with three bytes of input
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x40, b'a', b'b', b'c']);
        assert!(matches!(r.read_bytes(), Err(BinaryError::BadLength(_))));
    }

    #[test]
    fn strings_booleans_and_floats() {
        let mut r = Reader::new(&[0x06, b'a', b'b', b'c', 0x01, 0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(r.read_string_bytes().unwrap(), b"abc");
        assert!(r.read_boolean().unwrap());
        assert_eq!(r.read_float().unwrap(), 1.0);
        assert_eq!(r.read_boolean(), Err(BinaryError::Truncated));
    }

    #[test]
    fn negative_block_count_skips_the_byte_size() {
        let mut r = Reader::new(&[0x03, 0x10, 0x00]);
        assert_eq!(r.read_block_count().unwrap(), 2);
        assert_eq!(r.read_block_count().unwrap(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn a_boolean_byte_other_than_1_is_false() {
        for b in [2, 8, 0x80, 0xff] {
            assert_eq!(Reader::new(&[b]).read_boolean(), Ok(false), "{b}");
        }
    }
}
