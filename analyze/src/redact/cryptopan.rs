//! Crypto-PAn (Xu, Fan, Ammar and Moon, ICNP 2002): prefix-preserving
//! address anonymization keyed with 32 bytes. Two addresses that share their
//! first k bits map to two that share their first k bits, so subnets stay
//! recognisable, and one key maps an address the same way in every trace.
//!
//! Bit i of the result flips bit i of the address by the first bit of
//! AES(the address's first i bits, then the pad's remaining bits), the pad
//! being AES(key[16..32]) under key[..16]. IPv4 addresses take the block's
//! top 32 bits; IPv6, all 128 (as the reference implementations do).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;

pub struct CryptoPan {
    cipher: Aes128,
    pad: u128,
}

impl CryptoPan {
    pub fn new(key: &[u8; 32]) -> CryptoPan {
        let cipher = Aes128::new(GenericArray::from_slice(&key[..16]));
        let mut pad = GenericArray::clone_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        CryptoPan { cipher, pad: u128::from_be_bytes(pad.into()) }
    }

    /// The flips for the top `bits` bits of `addr` (an address in the block's top bits).
    fn flips(&self, addr: u128, bits: u32) -> u128 {
        let mut flips = 0u128;
        for pos in 0..bits {
            let keep = if pos == 0 { 0 } else { u128::MAX << (128 - pos) };
            let block = (addr & keep) | (self.pad & !keep);
            let mut b = GenericArray::from(block.to_be_bytes());
            self.cipher.encrypt_block(&mut b);
            flips |= ((b[0] >> 7) as u128) << (127 - pos);
        }
        flips
    }

    pub fn v4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let addr = (u32::from(a) as u128) << 96;
        Ipv4Addr::from(((addr ^ self.flips(addr, 32)) >> 96) as u32)
    }

    pub fn v6(&self, a: Ipv6Addr) -> Ipv6Addr {
        let addr = u128::from(a);
        Ipv6Addr::from(addr ^ self.flips(addr, 128))
    }

    pub fn ip(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(v4) => IpAddr::V4(self.v4(v4)),
            IpAddr::V6(v6) => IpAddr::V6(self.v6(v6)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples yacryptopan publishes for its key (its README).
    #[test]
    fn published_vectors() {
        let pan = CryptoPan::new(b"32-char-str-for-AES-key-and-pad.");
        assert_eq!(pan.v4("192.0.2.1".parse().unwrap()).to_string(), "192.0.125.244");
        assert_eq!(
            pan.v6("2001:db8::1".parse().unwrap()),
            "27fe:8bc7:fee:1e:1e1f:f0fe:f0e1:83fd".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn prefixes_are_preserved() {
        let pan = CryptoPan::new(b"0123456789abcdef0123456789abcdef");
        let a = pan.v4("10.1.2.3".parse().unwrap());
        let b = pan.v4("10.1.2.200".parse().unwrap());
        let c = pan.v4("10.9.0.1".parse().unwrap());
        let common = |x: Ipv4Addr, y: Ipv4Addr| (u32::from(x) ^ u32::from(y)).leading_zeros();
        assert_eq!(common(a, b), 24, "{a} {b}");
        assert_eq!(common(a, c), common("10.1.2.3".parse().unwrap(), "10.9.0.1".parse().unwrap()));
        assert_ne!(a, "10.1.2.3".parse::<Ipv4Addr>().unwrap());
        let x = pan.v6("2001:db8::1".parse().unwrap());
        let y = pan.v6("2001:db8::2".parse().unwrap());
        assert_eq!((u128::from(x) ^ u128::from(y)).leading_zeros(), 126);
    }
}
