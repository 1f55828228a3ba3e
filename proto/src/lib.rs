//! The omniroute.v1 API as Rust types: prost messages, tonic clients and
//! servers, and the encoded descriptor set that server reflection serves.
//!
//! The .proto files in `proto/omniroute/v1` are the source of truth; this crate
//! only compiles them. Nothing outside the server's API layer depends on it.

#![allow(
    missing_docs,
    clippy::large_enum_variant,
    missing_debug_implementations
)]

pub mod codec;

/// Package `omniroute.v1`.
pub mod v1 {
    tonic::include_proto!("omniroute.v1");
}

/// The encoded `FileDescriptorSet` of every omniroute.v1 file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/omniroute_descriptor.bin"));
