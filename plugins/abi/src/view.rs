//! The request as a module reads it: the same fields as [`super::Request`] in the same
//! order, so the same bytes, but every string borrows from the encoded request instead of
//! being copied out of it. The host builds and encodes the owned [`super::Request`]; a
//! module reads this view with [`Request::decode`] (the SDK does it before calling the
//! policy). Both describe the one frozen v1 encoding.
//!
//! [`Request::decode`] reads postcard's format directly rather than through serde: the
//! decoding was most of a decision's cost inside a module (serde's visitors, a UTF-8
//! check a byte per step under fuel metering). It accepts exactly what postcard accepts
//! for these types (the serde derives stay, and the `policy_abi` fuzz target compares the
//! two decoders on arbitrary bytes).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub use super::{AccountRoles, CredentialKind, IpAddress, Mfa, PrincipalKind};
use super::{Billing, Developer, Team};

/// See [`super::Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<'a> {
    /// Who is acting.
    #[serde(borrow)]
    pub principal: Principal<'a>,
    /// The action, e.g. `iam.api_keys.create`, `agent.bind` or `computers.delete`.
    pub action: &'a str,
    /// What it is done to.
    #[serde(borrow)]
    pub resource: Resource<'a>,
    /// When, and anything else the caller adds.
    #[serde(borrow)]
    pub context: Context<'a>,
}

/// See [`super::Principal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal<'a> {
    /// A person, a bot user, or the appliance itself.
    pub kind: PrincipalKind,
    /// `usr_…`, `bot_…` or `system`.
    pub id: &'a str,
    /// The account it acts in (`ac_…`).
    pub account: &'a str,
    /// Account roles of a user's membership; `None` for bots and the system.
    pub roles: Option<AccountRoles>,
    /// Tenant role assignments, with their permissions resolved to catalog indices.
    #[serde(borrow)]
    pub assignments: Vec<Assignment<'a>>,
    /// Second-factor state of the session (always `false` for token callers).
    pub mfa: Mfa,
    /// The credential the request was made with, if any.
    #[serde(borrow)]
    pub credential: Option<CredentialInfo<'a>>,
    /// The address the request came from.
    pub source_ip: Option<IpAddress>,
}

/// See [`super::Assignment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment<'a> {
    /// The role's name (`Technician`, or a custom role's name).
    pub role: &'a str,
    /// A built-in role: the policy knows its permissions by name.
    pub builtin: bool,
    /// The tenant (`tnt_…`) it applies to; `None` for all tenants.
    pub tenant: Option<&'a str>,
    /// A custom role's permissions as a bit set over the catalog (see
    /// [`super::Assignment::permissions`]).
    pub permissions: Vec<u64>,
}

impl Assignment<'_> {
    /// Whether the role grants catalog entry `permission`.
    pub fn grants(&self, permission: u32) -> bool {
        super::grants(&self.permissions, permission)
    }
}

/// See [`super::CredentialInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo<'a> {
    /// Which kind.
    pub kind: CredentialKind,
    /// `cr_…`, `ak_…` or `sshcr_…`.
    pub id: &'a str,
    /// Whether it is the member's personal authtoken.
    pub personal: bool,
    /// Bind rules (authtokens and SSH keys), as stored.
    #[serde(borrow)]
    pub acl: Vec<&'a str>,
    /// Action patterns an API key is limited to (empty: no limit beyond its owner's).
    #[serde(borrow)]
    pub scopes: Vec<&'a str>,
}

/// See [`super::Resource`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource<'a> {
    /// Its type, e.g. `api_key`, `user`, `computer`, `host` (for `agent.bind`).
    pub kind: &'a str,
    /// Its id (or, for `agent.bind`, the host name or label asked for).
    pub id: &'a str,
    /// The account it belongs to.
    pub account: &'a str,
    /// The tenant it belongs to, for application resources.
    pub tenant: Option<&'a str>,
    /// Its owner (`usr_…` or `bot_…`), for credentials.
    pub owner: Option<&'a str>,
    /// The catalog index of the permission the action needs, for application actions.
    pub permission: Option<u32>,
    /// Anything else, as name/value pairs.
    #[serde(borrow)]
    pub attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> Resource<'a> {
    /// The value of attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// See [`super::Context`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context<'a> {
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    /// Caller-supplied name/value pairs.
    #[serde(borrow)]
    pub values: Vec<(&'a str, &'a str)>,
}

/// Why bytes are not an encoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a value.
    Truncated,
    /// A value is not one its type allows (an enum tag, a `bool` or `Option` tag other
    /// than 0 or 1, a varint too long for its type, a string that is not UTF-8).
    Invalid,
    /// Bytes are left after the request.
    Trailing,
}

impl<'a> Request<'a> {
    /// Read a request from exactly `bytes` (postcard, as the host encodes
    /// [`super::Request`]), borrowing its strings.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
        let mut r = Reader { bytes };
        let request = Request {
            principal: r.principal()?,
            action: r.str()?,
            resource: r.resource()?,
            context: Context {
                time_ms: r.i64()?,
                values: r.seq(|r| r.pair())?,
            },
        };
        match r.bytes {
            [] => Ok(request),
            _ => Err(DecodeError::Trailing),
        }
    }
}

/// The unread rest of an encoded request.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (taken, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 varint of at most `bits` bits, as postcard writes `u32`, `u64`
    /// and `usize`: at most `ceil(bits / 7)` bytes, and the last may not carry bits past
    /// `bits`.
    #[inline(always)]
    fn varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        // Lengths, tags and small numbers: one byte.
        match self.bytes.split_first() {
            Some((&first, rest)) if first < 0x80 => {
                self.bytes = rest;
                Ok(u64::from(first))
            }
            _ => self.long_varint(bits),
        }
    }

    fn long_varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        let max_bytes = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let last = i + 1 == max_bytes;
                // The final byte of a full-width varint may only use the bits left.
                if last && u32::from(byte) >= 1 << (bits - 7 * i) {
                    return Err(DecodeError::Invalid);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid)
    }

    /// A fixed-size array: postcard writes its bytes with no length.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated)
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint(32)?).map_err(|_| DecodeError::Invalid)
    }

    #[inline(always)]
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let zigzag = self.varint(64)?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }

    #[inline(always)]
    fn len(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.varint(usize::BITS)?).map_err(|_| DecodeError::Invalid)
    }

    #[inline(always)]
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid),
        }
    }

    /// An enum's variant index (postcard writes it as a `u32` varint).
    #[inline(always)]
    fn tag(&mut self) -> Result<u32, DecodeError> {
        self.u32()
    }

    #[inline(always)]
    fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.byte()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            _ => Err(DecodeError::Invalid),
        }
    }

    #[inline(always)]
    fn seq<T>(
        &mut self,
        read: impl Fn(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.len()?;
        // Every element takes at least one byte: a length past what is left is a lie,
        // and must not reserve memory.
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(read(self)?);
        }
        Ok(items)
    }

    #[inline(always)]
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.len()?;
        utf8(self.take(len)?).ok_or(DecodeError::Invalid)
    }

    #[inline(always)]
    fn pair(&mut self) -> Result<(&'a str, &'a str), DecodeError> {
        Ok((self.str()?, self.str()?))
    }

    fn principal(&mut self) -> Result<Principal<'a>, DecodeError> {
        Ok(Principal {
            kind: match self.tag()? {
                0 => PrincipalKind::User,
                1 => PrincipalKind::Bot,
                2 => PrincipalKind::System,
                _ => return Err(DecodeError::Invalid),
            },
            id: self.str()?,
            account: self.str()?,
            roles: self.option(|r| r.roles())?,
            assignments: self.seq(|r| r.assignment())?,
            mfa: Mfa {
                enrolled: self.bool()?,
                verified: self.bool()?,
            },
            credential: self.option(|r| r.credential())?,
            source_ip: self.option(|r| r.ip())?,
        })
    }

    fn roles(&mut self) -> Result<AccountRoles, DecodeError> {
        Ok(AccountRoles {
            developer: match self.tag()? {
                0 => Developer::ReadWrite,
                1 => Developer::ReadOnly,
                _ => return Err(DecodeError::Invalid),
            },
            team: match self.tag()? {
                0 => Team::Manager,
                1 => Team::Invite,
                2 => Team::ReadOnly,
                _ => return Err(DecodeError::Invalid),
            },
            billing: match self.tag()? {
                0 => Billing::Access,
                1 => Billing::None,
                _ => return Err(DecodeError::Invalid),
            },
            admin: self.bool()?,
        })
    }

    fn assignment(&mut self) -> Result<Assignment<'a>, DecodeError> {
        Ok(Assignment {
            role: self.str()?,
            builtin: self.bool()?,
            tenant: self.option(|r| r.str())?,
            permissions: self.seq(|r| r.varint(64))?,
        })
    }

    fn credential(&mut self) -> Result<CredentialInfo<'a>, DecodeError> {
        Ok(CredentialInfo {
            kind: match self.tag()? {
                0 => CredentialKind::Authtoken,
                1 => CredentialKind::ApiKey,
                2 => CredentialKind::SshKey,
                3 => CredentialKind::Session,
                _ => return Err(DecodeError::Invalid),
            },
            id: self.str()?,
            personal: self.bool()?,
            acl: self.seq(|r| r.str())?,
            scopes: self.seq(|r| r.str())?,
        })
    }

    fn ip(&mut self) -> Result<IpAddress, DecodeError> {
        match self.tag()? {
            0 => Ok(IpAddress::V4(self.array()?)),
            1 => Ok(IpAddress::V6(self.array()?)),
            _ => Err(DecodeError::Invalid),
        }
    }

    fn resource(&mut self) -> Result<Resource<'a>, DecodeError> {
        Ok(Resource {
            kind: self.str()?,
            id: self.str()?,
            account: self.str()?,
            tenant: self.option(|r| r.str())?,
            owner: self.option(|r| r.str())?,
            permission: self.option(|r| r.u32())?,
            attributes: self.seq(|r| r.pair())?,
        })
    }
}

/// `bytes` as a string if they are UTF-8. Identifiers, actions and role names are ASCII,
/// which `is_ascii` checks a word at a time (`core::str::from_utf8` spent about nine
/// instructions a byte under fuel metering, a sixth of a decision); anything else goes
/// through `core::str::from_utf8`.
#[inline(always)]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // Safety: every byte is below 0x80, and ASCII is valid UTF-8.
        #[allow(unsafe_code)]
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    } else {
        core::str::from_utf8(bytes).ok()
    }
}
