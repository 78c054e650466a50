//! A direct serde serializer and deserializer for the CBOR this crate
//! writes, tried before ciborium.
//!
//! ciborium is the reference: it reads every CBOR form and words every
//! error. But it pulls each item head through its `Read` abstraction and
//! copies every string through a scratch buffer, which made one lock
//! payload cost ~5.8k instructions to decode and ~2.9k to encode (see
//! BENCHMARKS.md, "lock"). The lock dialog crosses the wire four times per
//! acquire+release, so that was a large share of the round trip.
//!
//! This module handles the definite-length subset that ciborium itself
//! emits, straight from and into byte slices. Anything else — floats,
//! 128-bit integers, CBOR tags, indefinite lengths, `undefined`, and any
//! error at all — makes it give up with [`Fallback`], and the caller runs
//! ciborium on the same bytes, which then decodes the rare form or words
//! the error. The rule that keeps the two in step: whenever this module
//! succeeds, ciborium would have succeeded with the same value (and the
//! encoder writes the very bytes ciborium writes). Where ciborium has a
//! quirk (identifiers and `str` fields longer than its scratch buffer are
//! refused; unit variants are read from text only), this module gives up
//! rather than differ. The fuzz harness checks the rule on every input.

use std::fmt;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

use crate::msg::{
    shared_utf8, ActorUid, LockMsg, LockRelease, LockRequest, LockStatus, Msg, Pld, TaskUid,
};

/// Scratch buffer ciborium decodes with ([`super::Codec`] hands it this
/// many bytes): it refuses identifiers and `str`/bytes fields longer than
/// it, so this module does too.
pub(super) const SCRATCH: usize = 256;

/// ciborium's recursion budget for `from_reader_with_buffer`: each array,
/// map and enum it enters spends one.
const RECURSION: usize = 256;

/// "Let ciborium do it": an unsupported form, or any error, whose wording
/// ciborium will provide.
#[derive(Debug)]
pub(super) struct Fallback;

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the fast CBOR subset")
    }
}

impl std::error::Error for Fallback {}

impl ser::Error for Fallback {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fallback
    }
}

impl de::Error for Fallback {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Fallback
    }
}

type Result<T> = std::result::Result<T, Fallback>;

const NULL: u8 = 0xf6;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;

/// ciborium marks its CBOR-tag wrappers with this type name.
const TAG_MARKER: &str = "@@TAG@@";

/// The newtype name under which [`LockMsg`]'s `Deserialize` asks for the
/// rest of the input as raw CBOR, to read it with [`read_lock_msg`].
/// Other deserializers know no such name and go on to the tagged form.
pub(crate) const LOCK_MSG: &str = "$smol_devx::LockMsg";

/// The fixed parts of the dialog envelopes and the lock messages as
/// ciborium writes them (`{"Variant": {fields in declaration order}}`):
/// map heads, variant names and keys, between which the writers and
/// readers below handle the values. (A text head is `0x60 | length`, a
/// map head `0xa0 | entries`.)
mod wire {
    /// `{"Start": {` with three fields.
    pub(super) const START: &[u8] = b"\xa1\x65Start\xa3";
    /// `{"Started": {` with two fields.
    pub(super) const STARTED: &[u8] = b"\xa1\x67Started\xa2";
    /// `{"Yield": {` with two fields.
    pub(super) const YIELD: &[u8] = b"\xa1\x65Yield\xa2";
    /// `{"Return": {` with two fields.
    pub(super) const RETURN: &[u8] = b"\xa1\x66Return\xa2";
    /// `{"Stop": {` with one field.
    pub(super) const STOP: &[u8] = b"\xa1\x64Stop\xa1";
    /// `{"Cancel": {` with one field.
    pub(super) const CANCEL: &[u8] = b"\xa1\x66Cancel\xa1";
    pub(super) const HANDLER: &[u8] = b"\x67handler";
    pub(super) const PLD: &[u8] = b"\x63pld";

    /// `{"LockRequest": {` with two fields.
    pub(super) const REQUEST: &[u8] = b"\xa1\x6bLockRequest\xa2";
    /// `{"LockStatus": {` with three fields.
    pub(super) const STATUS: &[u8] = b"\xa1\x6aLockStatus\xa3";
    /// `{"LockRelease": {` with two fields.
    pub(super) const RELEASE: &[u8] = b"\xa1\x6bLockRelease\xa2";
    /// `"subactor_uid": {"name":`
    pub(super) const UID_NAME: &[u8] = b"\x6csubactor_uid\xa2\x64name";
    pub(super) const UUID: &[u8] = b"\x64uuid";
    /// `"task_uid": {"name":`
    pub(super) const TASK_NAME: &[u8] = b"\x68task_uid\xa2\x64name";
    pub(super) const ID: &[u8] = b"\x62id";
    pub(super) const CID: &[u8] = b"\x63cid";
    pub(super) const LOCKED: &[u8] = b"\x66locked";
}

/// Appends `msg` as ciborium writes it (a test holds the bytes
/// together): the lock dialog's sends, without serde's calls (~1k
/// instructions a message through the encoder above).
#[cfg_attr(not(feature = "runtime"), allow(dead_code))] // the runtime's dialogs use it
pub(crate) fn write_lock_msg(msg: &LockMsg, out: &mut Vec<u8>) {
    use wire::*;
    let mut enc = Encoder(out);
    let uid = |enc: &mut Encoder<'_>, uid: &ActorUid| {
        enc.0.extend_from_slice(UID_NAME);
        enc.text(&uid.name);
        enc.0.extend_from_slice(UUID);
        enc.text(&uid.uuid);
    };
    match msg {
        LockMsg::LockRequest(r) => {
            enc.0.extend_from_slice(REQUEST);
            uid(&mut enc, &r.subactor_uid);
            enc.0.extend_from_slice(TASK_NAME);
            enc.text(&r.task_uid.name);
            enc.0.extend_from_slice(ID);
            write_head(enc.0, 0, r.task_uid.id);
        }
        LockMsg::LockStatus(s) => {
            enc.0.extend_from_slice(STATUS);
            uid(&mut enc, &s.subactor_uid);
            enc.0.extend_from_slice(CID);
            write_head(enc.0, 0, s.cid);
            enc.0.extend_from_slice(LOCKED);
            enc.0.push(if s.locked { TRUE } else { FALSE });
        }
        LockMsg::LockRelease(r) => {
            enc.0.extend_from_slice(RELEASE);
            uid(&mut enc, &r.subactor_uid);
            enc.0.extend_from_slice(CID);
            write_head(enc.0, 0, r.cid);
        }
    }
}

/// How deep ciborium nests to read a [`LockMsg`]: the enum, the message's
/// map, the uid's map.
const LOCK_MSG_DEPTH: usize = 3;

/// Reads `bytes`, whole, as a [`LockMsg`] in the shape this crate writes:
/// every map with exactly its fields, in declaration order, definite
/// lengths, no tags. `None` for any other bytes, which the serde path
/// then reads (or refuses): what this returns is always what serde would
/// read. The lock dialog's payloads cross the wire four times per
/// acquire+release, and serde's derived visitors cost ~1.6k instructions
/// a message on top of the fast decoder (callgrind of the lock bench).
pub(crate) fn read_lock_msg(bytes: &[u8]) -> Option<LockMsg> {
    let mut dec = Decoder {
        bytes,
        pos: 0,
        budget: LOCK_MSG_DEPTH,
    };
    let msg = dec.lock_msg().ok()?;
    (dec.pos == bytes.len()).then_some(msg)
}

/// Appends `msg` as ciborium writes it, for every variant but `Hello` and
/// `Error` (rare, and with nested values): `false` for those, with `out`
/// untouched. Every dialog message crosses here, and serde's calls
/// through the encoder above cost ~450 instructions a message.
pub(super) fn write_envelope(msg: &Msg, out: &mut Vec<u8>) -> bool {
    use wire::*;
    let (head, cid, handler, pld) = match msg {
        Msg::Start { cid, handler, pld } => (START, cid, Some(handler), Some(pld)),
        Msg::Started { cid, pld } => (STARTED, cid, None, Some(pld)),
        Msg::Yield { cid, pld } => (YIELD, cid, None, Some(pld)),
        Msg::Return { cid, pld } => (RETURN, cid, None, Some(pld)),
        Msg::Stop { cid } => (STOP, cid, None, None),
        Msg::Cancel { cid } => (CANCEL, cid, None, None),
        Msg::Hello(_) | Msg::Error { .. } => return false,
    };
    out.extend_from_slice(head);
    out.extend_from_slice(CID);
    write_head(out, 0, *cid);
    let mut enc = Encoder(out);
    if let Some(handler) = handler {
        enc.0.extend_from_slice(HANDLER);
        enc.text(handler);
    }
    if let Some(pld) = pld {
        enc.0.extend_from_slice(PLD);
        let bytes = pld.as_bytes();
        write_head(enc.0, 2, bytes.len() as u64);
        enc.0.extend_from_slice(bytes);
    }
    true
}

/// How deep ciborium nests to read an envelope: the enum and the
/// variant's map (a payload is a byte string).
const ENVELOPE_DEPTH: usize = 2;

/// Reads `bytes`, whole, as a [`Msg`] in the shape [`write_envelope`]
/// writes, within a nesting budget of `max_depth`. `None` for any other
/// bytes (`Hello`, `Error`, fields reordered or extra, a long handler
/// name), which the serde path then reads or refuses: what this returns
/// is always what the derive reads.
pub(super) fn read_envelope(bytes: &[u8], max_depth: usize) -> Option<Msg> {
    use wire::*;
    if max_depth < ENVELOPE_DEPTH {
        return None;
    }
    let mut dec = Decoder {
        bytes,
        pos: 0,
        // Nothing here nests through `nested`: the check above is all.
        budget: 0,
    };
    let dec = &mut dec;
    let cid = |dec: &mut Decoder<'_>| -> Result<u64> {
        dec.lit(CID)?;
        dec.expect(0)
    };
    let pld = |dec: &mut Decoder<'_>| -> Result<Pld> {
        dec.lit(PLD)?;
        let len = dec.expect(2)?;
        Ok(Pld::from_raw(dec.take(len)?.to_vec()))
    };
    let msg = if dec.lit(STARTED).is_ok() {
        Msg::Started {
            cid: cid(dec).ok()?,
            pld: pld(dec).ok()?,
        }
    } else if dec.lit(YIELD).is_ok() {
        Msg::Yield {
            cid: cid(dec).ok()?,
            pld: pld(dec).ok()?,
        }
    } else if dec.lit(RETURN).is_ok() {
        Msg::Return {
            cid: cid(dec).ok()?,
            pld: pld(dec).ok()?,
        }
    } else if dec.lit(START).is_ok() {
        let cid = cid(dec).ok()?;
        dec.lit(HANDLER).ok()?;
        let handler = dec.short_text().ok()?.to_owned();
        Msg::Start {
            cid,
            handler,
            pld: pld(dec).ok()?,
        }
    } else if dec.lit(STOP).is_ok() {
        Msg::Stop {
            cid: cid(dec).ok()?,
        }
    } else {
        dec.lit(CANCEL).ok()?;
        Msg::Cancel {
            cid: cid(dec).ok()?,
        }
    };
    (dec.pos == bytes.len()).then_some(msg)
}

/// Appends `value` as CBOR to `out`, exactly as ciborium would. On
/// `Err`, `out` may hold a partial value: the caller truncates it.
pub(super) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    value.serialize(&mut Encoder(out))
}

/// Decodes the one value that `bytes` holds entirely, nested at most
/// `max_depth` arrays, maps and enums deep.
///
/// This runs before the codec's structural pass (which it makes
/// redundant when it succeeds), so it refuses what that pass would:
/// bytes after the value, a cut value, and nesting beyond `max_depth`
/// (it counts every container and enum, the pass only non-empty
/// containers, so it never accepts deeper).
pub(super) fn decode<T: de::DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T> {
    let mut dec = Decoder {
        bytes,
        pos: 0,
        budget: max_depth.min(RECURSION),
    };
    let value = T::deserialize(&mut dec)?;
    if dec.pos != bytes.len() {
        return Err(Fallback);
    }
    Ok(value)
}

fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let major = major << 5;
    match arg {
        0..=23 => out.push(major | arg as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// Serializer methods that write a narrow value as its wide type.
macro_rules! widen {
    ($wide:ident: $($name:ident($ty:ty)),*) => {$(
        fn $name(self, v: $ty) -> Result<()> {
            self.$wide(v.into())
        }
    )*};
}

/// Serializer methods for the forms left to ciborium.
macro_rules! give_up {
    ($($name:ident($ty:ty)),*) => {$(
        fn $name(self, _: $ty) -> Result<()> {
            Err(Fallback)
        }
    )*};
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    fn text(&mut self, s: &str) {
        write_head(self.0, 3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: i64) {
        if v < 0 {
            write_head(self.0, 1, (v as u64) ^ !0);
        } else {
            write_head(self.0, 0, v as u64);
        }
    }
    /// The one-entry map that wraps a non-unit enum variant.
    fn variant(&mut self, name: &str, variant: &str) -> Result<()> {
        if name == TAG_MARKER {
            return Err(Fallback);
        }
        self.0.push(0xa1);
        self.text(variant);
        Ok(())
    }
}

impl ser::Serializer for &mut Encoder<'_> {
    type Ok = ();
    type Error = Fallback;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.0.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    // Narrow integers are written like the wide ones, as ciborium does.
    widen!(serialize_i64: serialize_i8(i8), serialize_i16(i16), serialize_i32(i32));
    widen!(serialize_u64: serialize_u8(u8), serialize_u16(u16), serialize_u32(u32));
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.int(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        write_head(self.0, 0, v);
        Ok(())
    }
    // ciborium picks the shortest lossless float width, and bignum tags
    // for 128-bit integers: rare here, left to it.
    give_up!(
        serialize_i128(i128),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64)
    );
    fn serialize_char(self, v: char) -> Result<()> {
        self.text(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.text(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        write_head(self.0, 2, v.len() as u64);
        self.0.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.0.push(NULL);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.text(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.variant(name, variant)?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        // Unknown length: ciborium writes an indefinite array.
        write_head(self.0, 4, len.ok_or(Fallback)? as u64);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        self.variant(name, variant)?;
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        write_head(self.0, 5, len.ok_or(Fallback)? as u64);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        self.variant(name, variant)?;
        self.serialize_map(Some(len))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// One impl body for the six compound serializers, which all just write
/// their items in order (lengths went into the head).
macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Fallback;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = Fallback;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = Fallback;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        self.text(key);
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Encoder<'_> {
    type Ok = ();
    type Error = Fallback;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

/// Deserializer methods handled as another one (`give_up`: left to
/// ciborium).
macro_rules! forward {
    (give_up: $($name:ident),*) => {$(
        fn $name<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
            Err(Fallback)
        }
    )*};
    ($to:ident: $($name:ident),*) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.$to(visitor)
        }
    )*};
}

struct Decoder<'de> {
    bytes: &'de [u8],
    pos: usize,
    /// Containers and enums still allowed, as ciborium counts them.
    budget: usize,
}

/// One item head: major type and argument. Indefinite lengths, reserved
/// values and the float/simple forms other than false/true/null come out
/// as `Fallback`.
#[derive(Clone, Copy)]
struct Head {
    major: u8,
    arg: u64,
}

impl<'de> Decoder<'de> {
    fn peek_byte(&self) -> Result<u8> {
        self.bytes.get(self.pos).copied().ok_or(Fallback)
    }

    fn head(&mut self) -> Result<Head> {
        let first = self.peek_byte()?;
        let major = first >> 5;
        let info = first & 0x1f;
        let width = match info {
            0..=23 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(Fallback),
        };
        // Major 7 with an argument byte or more is a float or an extended
        // simple value.
        if major == 7 && width > 0 {
            return Err(Fallback);
        }
        let start = self.pos + 1;
        let arg_bytes = self.bytes.get(start..start + width).ok_or(Fallback)?;
        let arg = if width == 0 {
            u64::from(info)
        } else {
            arg_bytes
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        };
        self.pos = start + width;
        Ok(Head { major, arg })
    }

    fn expect(&mut self, major: u8) -> Result<u64> {
        let head = self.head()?;
        if head.major == major {
            Ok(head.arg)
        } else {
            Err(Fallback)
        }
    }

    fn take(&mut self, len: u64) -> Result<&'de [u8]> {
        let len = usize::try_from(len).map_err(|_| Fallback)?;
        let end = self.pos.checked_add(len).ok_or(Fallback)?;
        let out = self.bytes.get(self.pos..end).ok_or(Fallback)?;
        self.pos = end;
        Ok(out)
    }

    fn text(&mut self, len: u64) -> Result<&'de str> {
        std::str::from_utf8(self.take(len)?).map_err(|_| Fallback)
    }

    /// Text no longer than ciborium's scratch (its limit for `str` and
    /// identifiers).
    fn short_text(&mut self) -> Result<&'de str> {
        let len = self.expect(3)?;
        if len > SCRATCH as u64 {
            return Err(Fallback);
        }
        self.text(len)
    }

    /// The bytes `expected`, exactly.
    fn lit(&mut self, expected: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(expected.len()).ok_or(Fallback)?;
        if self.bytes.get(self.pos..end) == Some(expected) {
            self.pos = end;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    fn shared_text(&mut self) -> Result<std::sync::Arc<str>> {
        let len = self.expect(3)?;
        shared_utf8(self.take(len)?).ok_or(Fallback)
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.head()? {
            Head { major: 7, arg: 20 } => Ok(false),
            Head { major: 7, arg: 21 } => Ok(true),
            _ => Err(Fallback),
        }
    }

    /// The `subactor_uid` field, key included.
    fn actor_uid(&mut self) -> Result<ActorUid> {
        self.lit(wire::UID_NAME)?;
        let name = self.shared_text()?;
        self.lit(wire::UUID)?;
        let uuid = self.shared_text()?;
        Ok(ActorUid { name, uuid })
    }

    fn lock_msg(&mut self) -> Result<LockMsg> {
        use wire::*;
        if self.lit(STATUS).is_ok() {
            let subactor_uid = self.actor_uid()?;
            self.lit(CID)?;
            let cid = self.expect(0)?;
            self.lit(LOCKED)?;
            let locked = self.boolean()?;
            return Ok(LockMsg::LockStatus(LockStatus {
                subactor_uid,
                cid,
                locked,
            }));
        }
        if self.lit(RELEASE).is_ok() {
            let subactor_uid = self.actor_uid()?;
            self.lit(CID)?;
            let cid = self.expect(0)?;
            return Ok(LockMsg::LockRelease(LockRelease { subactor_uid, cid }));
        }
        self.lit(REQUEST)?;
        let subactor_uid = self.actor_uid()?;
        self.lit(TASK_NAME)?;
        let name = self.shared_text()?;
        self.lit(ID)?;
        let id = self.expect(0)?;
        Ok(LockMsg::LockRequest(LockRequest {
            subactor_uid,
            task_uid: TaskUid { name, id },
        }))
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.budget = self.budget.checked_sub(1).ok_or(Fallback)?;
        let out = f(self);
        self.budget += 1;
        out
    }

    fn i64(&mut self) -> Result<i64> {
        let head = self.head()?;
        let magnitude = i64::try_from(head.arg).map_err(|_| Fallback)?;
        match head.major {
            0 => Ok(magnitude),
            1 => Ok(magnitude ^ !0),
            _ => Err(Fallback),
        }
    }

    fn seq<V: Visitor<'de>>(&mut self, len: u64, visitor: V) -> Result<V::Value> {
        self.nested(|me| {
            let mut items = Items { dec: me, left: len };
            let value = visitor.visit_seq(&mut items)?;
            if items.left == 0 {
                Ok(value)
            } else {
                Err(Fallback)
            }
        })
    }

    fn map<V: Visitor<'de>>(&mut self, len: u64, visitor: V) -> Result<V::Value> {
        self.nested(|me| {
            let mut items = Items { dec: me, left: len };
            let value = visitor.visit_map(&mut items)?;
            if items.left == 0 {
                Ok(value)
            } else {
                Err(Fallback)
            }
        })
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Fallback;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let head = self.head()?;
        match head.major {
            0 => visitor.visit_u64(head.arg),
            1 => {
                let magnitude = i64::try_from(head.arg).map_err(|_| Fallback)?;
                visitor.visit_i64(magnitude ^ !0)
            }
            2 => visitor.visit_borrowed_bytes(self.take(head.arg)?),
            3 => visitor.visit_borrowed_str(self.text(head.arg)?),
            4 => self.seq(head.arg, visitor),
            5 => self.map(head.arg, visitor),
            7 => match head.arg {
                20 => visitor.visit_bool(false),
                21 => visitor.visit_bool(true),
                22 => visitor.visit_none(),
                _ => Err(Fallback),
            },
            _ => Err(Fallback),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.head()? {
            Head { major: 7, arg: 20 } => visitor.visit_bool(false),
            Head { major: 7, arg: 21 } => visitor.visit_bool(true),
            _ => Err(Fallback),
        }
    }

    // ciborium reads every integer width through its 64-bit path.
    forward!(deserialize_i64: deserialize_i8, deserialize_i16, deserialize_i32);
    forward!(deserialize_u64: deserialize_u8, deserialize_u16, deserialize_u32);
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i64(self.i64()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.expect(0)?)
    }
    forward!(give_up: deserialize_i128, deserialize_u128, deserialize_f32, deserialize_f64);

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let text = self.short_text()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Fallback),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.short_text()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(3)?;
        visitor.visit_borrowed_str(self.text(len)?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(2)?;
        if len > SCRATCH as u64 {
            return Err(Fallback);
        }
        visitor.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(2)?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek_byte()? == NULL {
            self.pos += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.head()? {
            Head { major: 7, arg: 22 } => visitor.visit_unit(),
            _ => Err(Fallback),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value> {
        self.deserialize_unit(v)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == LOCK_MSG {
            // The rest of the input, for `read_lock_msg`, which reads it
            // whole or not at all; ciborium would need the depth.
            if self.budget < LOCK_MSG_DEPTH {
                return Err(Fallback);
            }
            let rest = self.bytes.get(self.pos..).ok_or(Fallback)?;
            self.pos = self.bytes.len();
            return visitor.visit_borrowed_bytes(rest);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(4)?;
        self.seq(len, visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(5)?;
        self.map(len, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if name == TAG_MARKER {
            return Err(Fallback);
        }
        let first = self.peek_byte()?;
        let wrapped = match first >> 5 {
            3 => false,
            _ if first == 0xa1 => {
                self.pos += 1;
                true
            }
            _ => return Err(Fallback),
        };
        self.nested(|me| visitor.visit_enum(Variant { dec: me, wrapped }))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.expect(3)?;
        if len > SCRATCH as u64 {
            return Err(Fallback);
        }
        let name = self.take(len)?;
        // Field and variant names are ASCII, and derived visitors match
        // them as bytes just as well: that spares a UTF-8 validation per
        // key (~1.5k instructions per lock dialog at the root, by
        // callgrind of the lock bench). Other text goes the
        // `str` way, so invalid UTF-8 is refused as ciborium refuses it;
        // a visitor without `visit_bytes` errs, and ciborium decodes.
        if name.is_ascii() {
            visitor.visit_borrowed_bytes(name)
        } else {
            visitor.visit_borrowed_str(std::str::from_utf8(name).map_err(|_| Fallback)?)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The items of a definite-length array or map.
struct Items<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    left: u64,
}

impl<'de> de::SeqAccess<'de> for &mut Items<'_, 'de> {
    type Error = Fallback;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.dec).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl Items<'_, '_> {
    /// The items left, as the head claims them but never more than the
    /// bytes left (each takes one at least): serde sizes its collections
    /// by this, and memory must follow the bytes that arrived. (A 311-byte
    /// message claiming 39,321 uids made serde allocate 1 MiB: fuzzing.)
    fn hint(&self) -> Option<usize> {
        let bytes_left = self.dec.bytes.len().saturating_sub(self.dec.pos);
        Some(usize::try_from(self.left).map_or(bytes_left, |n| n.min(bytes_left)))
    }
}

impl<'de> de::MapAccess<'de> for &mut Items<'_, 'de> {
    type Error = Fallback;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.dec).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.dec)
    }
    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

/// An externally tagged enum value: bare text for a unit variant, a
/// one-entry map from the variant name to its body for the others.
struct Variant<'a, 'de> {
    dec: &'a mut Decoder<'de>,
    wrapped: bool,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Fallback;
    type Variant = Self;
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self)> {
        let value = seed.deserialize(&mut *self.dec)?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Fallback;
    // ciborium reads `{"Unit": x}` as `Unit` and leaves `x` unread, and
    // reads the item after a bare name as a non-unit variant's body; both
    // are left to it.
    fn unit_variant(self) -> Result<()> {
        if self.wrapped {
            Err(Fallback)
        } else {
            Ok(())
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        if !self.wrapped {
            return Err(Fallback);
        }
        seed.deserialize(self.dec)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        if !self.wrapped {
            return Err(Fallback);
        }
        de::Deserializer::deserialize_any(self.dec, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.tuple_variant(0, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::msg::{
        ActorUid, Hello, LockMsg, LockRelease, LockRequest, LockStatus, Msg, Pld, RemoteError,
        TaskUid,
    };

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shapes {
        Unit,
        Newtype(i32),
        Tuple(u8, String),
        Struct { a: Option<u64>, b: Vec<bool> },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Mixed {
        unit: (),
        chars: (char, char),
        ints: [i64; 6],
        shapes: Vec<Shapes>,
        map: BTreeMap<u16, String>,
        bytes: Pld,
        nothing: Option<String>,
    }

    fn ciborium_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    /// ciborium as the codec calls it.
    fn ciborium_decode<T: de::DeserializeOwned>(
        bytes: &[u8],
    ) -> std::result::Result<T, ciborium::de::Error<std::io::Error>> {
        ciborium::de::from_reader_with_buffer(bytes, &mut [0; SCRATCH])
    }

    /// Encodes with this module, checks the bytes against ciborium's and
    /// decodes them back with this module.
    fn round_trip<T>(value: &T)
    where
        T: Serialize + de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let mut ours = Vec::new();
        encode(value, &mut ours).expect("inside the fast subset");
        assert_eq!(ours, ciborium_bytes(value), "bytes differ for {value:?}");
        assert_eq!(&decode::<T>(&ours, RECURSION).expect("decodes"), value);
    }

    fn uid() -> ActorUid {
        ActorUid::new("breakpoint_forever", "3f0c9a52-6f0e-4f7e-9d0b-4a6f6b7c8d9e")
    }

    #[test]
    fn messages_encode_as_ciborium_does_and_decode_back() {
        let lock = [
            LockMsg::LockRequest(LockRequest {
                subactor_uid: uid(),
                task_uid: TaskUid::new("pause", 17),
            }),
            LockMsg::LockStatus(LockStatus {
                subactor_uid: uid(),
                cid: u64::MAX,
                locked: true,
            }),
            LockMsg::LockRelease(LockRelease {
                subactor_uid: uid(),
                cid: 300,
            }),
        ];
        for msg in &lock {
            round_trip(msg);
            let pld = Pld::from_raw(ciborium_bytes(msg));
            round_trip(&Msg::Started { cid: 70_000, pld });
        }
        round_trip(&Msg::Hello(Hello {
            uid: uid(),
            token: "t".repeat(300),
            version: 1,
        }));
        round_trip(&Msg::Start {
            cid: 0,
            handler: "lock_stdio_for_peer".into(),
            pld: Pld::from_raw(vec![7; 70_000]),
        });
        round_trip(&Msg::Stop { cid: 1 << 40 });
        let err = RemoteError::new("NameError", "doggypants", uid())
            .with_backtrace("0: main")
            .relayed_by(uid());
        round_trip(&Msg::Error { cid: 5, error: err });
    }

    #[test]
    fn every_serde_shape_matches_ciborium() {
        round_trip(&Mixed {
            unit: (),
            chars: ('x', '\u{1F980}'),
            ints: [0, 23, 24, -1, -25, i64::MIN],
            shapes: vec![
                Shapes::Unit,
                Shapes::Newtype(-70_000),
                Shapes::Tuple(255, "é".into()),
                Shapes::Struct {
                    a: Some(u64::MAX),
                    b: vec![true, false],
                },
                Shapes::Struct { a: None, b: vec![] },
            ],
            map: [(1, "one".into()), (65_535, String::new())].into(),
            bytes: Pld::from_raw(vec![1, 2, 3]),
            nothing: None,
        });
    }

    #[test]
    fn forms_outside_the_subset_fall_back() {
        let mut out = Vec::new();
        assert!(encode(&1.5f64, &mut out).is_err());
        assert!(encode(&u128::MAX, &mut out).is_err());
        // An iterator of unknown length: ciborium writes it indefinite.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_seq((0..3).filter(|_| true))
            }
        }
        assert!(encode(&Unsized, &mut out).is_err());

        // Valid CBOR that ciborium reads and this module leaves to it.
        let cases: [(&[u8], &str); 5] = [
            (&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0], "float"),
            (&[0xc1, 0x01], "tag"),
            (&[0x9f, 0x01, 0xff], "indefinite array"),
            (&[0xf7], "undefined"),
            (&[0x3b, 0xff, 0, 0, 0, 0, 0, 0, 0], "below i64::MIN"),
        ];
        for (bytes, what) in cases {
            assert!(
                decode::<ciborium::Value>(bytes, RECURSION).is_err(),
                "{what} should fall back"
            );
        }
    }

    #[test]
    fn ciborium_quirks_are_left_to_ciborium() {
        // A field name longer than ciborium's scratch: it refuses it, even
        // where serde would ignore an unknown field.
        let long_key = "k".repeat(SCRATCH + 1);
        let mut fields = BTreeMap::new();
        fields.insert(long_key.as_str(), 1u8);
        fields.insert("cid", 2);
        let bytes = ciborium_bytes(&fields);
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct OnlyCid {
            cid: u8,
        }
        assert!(decode::<OnlyCid>(&bytes, RECURSION).is_err());
        assert!(ciborium_decode::<OnlyCid>(&bytes).is_err());

        // `{"Unit": 5}`: ciborium yields `Unit` and leaves the 5 unread.
        let bytes = ciborium_bytes(&[("Unit", 5u8)].into_iter().collect::<BTreeMap<_, _>>());
        assert!(decode::<Shapes>(&bytes, RECURSION).is_err());
        assert_eq!(ciborium_decode::<Shapes>(&bytes).unwrap(), Shapes::Unit);
        // A bare name for a variant that has a body.
        assert!(decode::<Shapes>(&ciborium_bytes("Newtype"), RECURSION).is_err());
    }

    #[test]
    fn the_recursion_budget_is_ciboriums() {
        // 256 nested arrays spend the whole budget; the 257th level is one
        // too many for ciborium, and so for this module.
        let nested = |levels: usize| {
            let mut bytes = vec![0x81; levels];
            bytes.push(0x00);
            bytes
        };
        for levels in [RECURSION - 1, RECURSION, RECURSION + 1] {
            let bytes = nested(levels);
            assert_eq!(
                decode::<ciborium::Value>(&bytes, RECURSION).is_ok(),
                ciborium_decode::<ciborium::Value>(&bytes).is_ok(),
                "{levels} levels"
            );
        }
        assert!(decode::<ciborium::Value>(&nested(RECURSION), RECURSION).is_ok());
        assert!(decode::<ciborium::Value>(&nested(RECURSION + 1), RECURSION).is_err());
        // The codec's own, lower limit holds too: it decodes first.
        assert!(decode::<ciborium::Value>(&nested(4), 4).is_ok());
        assert!(decode::<ciborium::Value>(&nested(5), 4).is_err());
    }

    /// What the derive reads a lock message as: the oracle for the hand
    /// reader and for `LockMsg`'s own `Deserialize`.
    #[derive(Deserialize, Debug)]
    #[serde(rename = "LockMsg")]
    #[allow(clippy::enum_variant_names)] // the wire's names
    enum Derived {
        LockRequest(LockRequest),
        LockStatus(LockStatus),
        LockRelease(LockRelease),
    }

    impl From<Derived> for LockMsg {
        fn from(d: Derived) -> Self {
            match d {
                Derived::LockRequest(m) => LockMsg::LockRequest(m),
                Derived::LockStatus(m) => LockMsg::LockStatus(m),
                Derived::LockRelease(m) => LockMsg::LockRelease(m),
            }
        }
    }

    fn lock_msgs() -> [LockMsg; 3] {
        [
            LockMsg::LockRequest(LockRequest {
                subactor_uid: uid(),
                task_uid: TaskUid::new("pause", 1 << 33),
            }),
            LockMsg::LockStatus(LockStatus {
                subactor_uid: uid(),
                cid: 24,
                locked: false,
            }),
            LockMsg::LockRelease(LockRelease {
                subactor_uid: ActorUid::new("é", ""),
                cid: 0,
            }),
        ]
    }

    /// Every byte replaced by a few values, every cut, a byte inserted
    /// everywhere: a few thousand neighbours of a valid message.
    fn mutations(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..bytes.len() {
            for v in [
                0x00, 0x01, 0x17, 0x18, 0x1b, 0x3f, 0x60, 0x61, 0xa0, 0xa3, 0xc0, 0xf4, 0xf5, 0xf6,
                0xff,
            ] {
                let mut m = bytes.to_vec();
                m[i] = v;
                out.push(m);
            }
            out.push(bytes[..i].to_vec());
            let mut m = bytes.to_vec();
            m.insert(i, 0x00);
            out.push(m);
        }
        out
    }

    #[test]
    fn lock_messages_read_by_hand_as_the_derive_reads_them() {
        for msg in lock_msgs() {
            let bytes = ciborium_bytes(&msg);
            assert_eq!(read_lock_msg(&bytes).as_ref(), Some(&msg));
            for m in mutations(&bytes) {
                let derived = ciborium_decode::<Derived>(&m).ok().map(LockMsg::from);
                if let Some(by_hand) = read_lock_msg(&m) {
                    assert_eq!(derived.as_ref(), Some(&by_hand), "{m:02x?}");
                }
                // The whole type, both decoders: as the derive would.
                if let Ok(fast) = decode::<LockMsg>(&m, RECURSION) {
                    assert_eq!(derived.as_ref(), Some(&fast), "{m:02x?}");
                }
                let tagged = ciborium_decode::<LockMsg>(&m).ok();
                assert_eq!(tagged, derived, "{m:02x?}");
            }
        }
    }

    #[test]
    fn other_shapes_of_a_lock_message_are_read_the_serde_way() {
        use ciborium::Value;
        let text = |s: &str| Value::Text(s.into());
        let uid = Value::Map(vec![(text("uuid"), text("u")), (text("name"), text("n"))]);
        let status = |fields: Vec<(Value, Value)>| {
            Value::Map(vec![(text("LockStatus"), Value::Map(fields))])
        };
        let expected = LockMsg::LockStatus(LockStatus {
            subactor_uid: ActorUid::new("n", "u"),
            cid: 5,
            locked: true,
        });
        let reordered = status(vec![
            (text("locked"), Value::Bool(true)),
            (text("cid"), Value::Integer(5.into())),
            (text("subactor_uid"), uid.clone()),
        ]);
        let extra = status(vec![
            (text("subactor_uid"), uid),
            (text("cid"), Value::Integer(5.into())),
            (text("locked"), Value::Bool(true)),
            (text("later"), Value::Null),
        ]);
        for shape in [reordered, extra] {
            let bytes = ciborium_bytes(&shape);
            assert_eq!(read_lock_msg(&bytes), None);
            let codec = crate::codec::Codec::default();
            let pld = Pld::from_raw(bytes);
            assert_eq!(codec.decode_pld::<LockMsg>(&pld).unwrap(), expected);
        }
        // Not a lock message at all: refused in words, not read.
        let pld = Pld::from_raw(ciborium_bytes(&Value::Map(vec![(
            text("LockNope"),
            Value::Null,
        )])));
        let err = crate::codec::Codec::default()
            .decode_pld::<LockMsg>(&pld)
            .unwrap_err();
        assert!(err.to_string().contains("LockNope"), "{err}");
    }

    #[test]
    fn lock_messages_are_written_as_ciborium_writes_them() {
        let long = "x".repeat(70_000);
        for name in [
            "",
            "a",
            &"n".repeat(23),
            &"n".repeat(24),
            &"é".repeat(200),
            &long,
        ] {
            for n in EVERY_WIDTH {
                let uid = ActorUid::new(name, "3f0c9a52-6f0e");
                let msgs = [
                    LockMsg::LockRequest(LockRequest {
                        subactor_uid: uid.clone(),
                        task_uid: TaskUid::new(name, n),
                    }),
                    LockMsg::LockStatus(LockStatus {
                        subactor_uid: uid.clone(),
                        cid: n,
                        locked: n % 2 == 0,
                    }),
                    LockMsg::LockRelease(LockRelease {
                        subactor_uid: uid,
                        cid: n,
                    }),
                ];
                for msg in msgs {
                    let mut ours = Vec::new();
                    write_lock_msg(&msg, &mut ours);
                    assert_eq!(ours, ciborium_bytes(&msg), "{msg:?}");
                }
            }
        }
    }

    #[test]
    fn a_lock_message_too_deep_for_ciborium_is_left_to_it() {
        let bytes = ciborium_bytes(&lock_msgs()[0]);
        assert!(decode::<LockMsg>(&bytes, LOCK_MSG_DEPTH).is_ok());
        assert!(decode::<LockMsg>(&bytes, LOCK_MSG_DEPTH - 1).is_err());
    }

    /// Numbers at each edge of every CBOR head width.
    const EVERY_WIDTH: [u64; 9] = [
        0,
        23,
        24,
        255,
        256,
        65_535,
        65_536,
        u32::MAX as u64,
        u64::MAX,
    ];

    /// One envelope of each variant the hand path covers.
    fn envelopes(cid: u64, name: &str, pld: &[u8]) -> [Msg; 6] {
        let pld = || Pld::from_raw(pld.to_vec());
        [
            Msg::Start {
                cid,
                handler: name.into(),
                pld: pld(),
            },
            Msg::Started { cid, pld: pld() },
            Msg::Yield { cid, pld: pld() },
            Msg::Return { cid, pld: pld() },
            Msg::Stop { cid },
            Msg::Cancel { cid },
        ]
    }

    #[test]
    fn envelopes_are_written_as_ciborium_writes_them() {
        let long = vec![0xa5; 70_000];
        for cid in EVERY_WIDTH {
            for name in ["", "lock_stdio_for_peer", &"n".repeat(24), &"é".repeat(200)] {
                for pld in [&[][..], &[0x01], &[7; 23], &[7; 24], &[7; 256], &long] {
                    for msg in envelopes(cid, name, pld) {
                        let mut ours = vec![0xee];
                        assert!(write_envelope(&msg, &mut ours));
                        assert_eq!(ours[1..], ciborium_bytes(&msg), "{msg:?}");
                    }
                }
            }
        }
        let error = RemoteError::new("NameError", "doggypants", uid());
        for msg in [
            Msg::Error { cid: 1, error },
            Msg::Hello(Hello {
                uid: uid(),
                token: "t".into(),
                version: 1,
            }),
        ] {
            let mut out = vec![0xee];
            assert!(!write_envelope(&msg, &mut out));
            assert_eq!(out, [0xee], "left to serde, untouched");
        }
    }

    #[test]
    fn envelopes_read_by_hand_as_the_derive_reads_them() {
        let codec = crate::codec::Codec::default();
        for msg in envelopes(300, "lock", &[0xa1, 0x00]) {
            let bytes = ciborium_bytes(&msg);
            assert_eq!(read_envelope(&bytes, RECURSION).as_ref(), Some(&msg));
            for m in mutations(&bytes) {
                // `Msg`'s `Deserialize` is the derive.
                let derived = ciborium_decode::<Msg>(&m).ok();
                if let Some(by_hand) = read_envelope(&m, RECURSION) {
                    assert_eq!(derived.as_ref(), Some(&by_hand), "{m:02x?}");
                }
                if let Ok(decoded) = codec.decode_body(&m) {
                    assert_eq!(derived.as_ref(), Some(&decoded), "{m:02x?}");
                }
            }
        }
    }

    #[test]
    fn other_shapes_of_an_envelope_are_read_the_serde_way() {
        use ciborium::Value;
        let text = |s: &str| Value::Text(s.into());
        let started = |fields: Vec<(Value, Value)>| {
            ciborium_bytes(&Value::Map(vec![(text("Started"), Value::Map(fields))]))
        };
        let cid = || (text("cid"), Value::Integer(9.into()));
        let pld = || (text("pld"), Value::Bytes(vec![0xf6]));
        let expected = Msg::Started {
            cid: 9,
            pld: Pld::from_raw(vec![0xf6]),
        };
        let long_handler = Msg::Start {
            cid: 9,
            handler: "h".repeat(SCRATCH + 1),
            pld: Pld::default(),
        };
        for (bytes, msg) in [
            (started(vec![pld(), cid()]), &expected),
            (
                started(vec![cid(), pld(), (text("later"), Value::Null)]),
                &expected,
            ),
            (ciborium_bytes(&long_handler), &long_handler),
        ] {
            assert_eq!(read_envelope(&bytes, RECURSION), None);
            let codec = crate::codec::Codec::default();
            assert_eq!(&codec.decode_body(&bytes).unwrap(), msg);
        }
        // ciborium alone stops after one value: the codec refuses more.
        let mut trailing = ciborium_bytes(&expected);
        trailing.push(0x00);
        assert_eq!(read_envelope(&trailing, RECURSION), None);
        assert!(matches!(
            crate::codec::Codec::default().decode_body(&trailing),
            Err(crate::codec::CodecError::TrailingBytes { extra: 1 })
        ));
        // Within ciborium's nesting but not the codec's: refused, as the
        // serde path refuses it.
        let bytes = ciborium_bytes(&expected);
        assert_eq!(read_envelope(&bytes, ENVELOPE_DEPTH - 1), None);
        let shallow = crate::codec::Codec::default().with_max_depth(ENVELOPE_DEPTH - 1);
        assert!(shallow.decode_body(&bytes).is_err());
        let enough = crate::codec::Codec::default().with_max_depth(ENVELOPE_DEPTH);
        assert_eq!(enough.decode_body(&bytes).unwrap(), expected);
    }

    #[test]
    fn cut_values_and_trailing_bytes_fall_back() {
        let mut bytes = ciborium_bytes(&Msg::Stop { cid: 9 });
        bytes.push(0);
        assert!(decode::<Msg>(&bytes, RECURSION).is_err());
        bytes.truncate(bytes.len() - 2);
        assert!(decode::<Msg>(&bytes, RECURSION).is_err());
    }
}
