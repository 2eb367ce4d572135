//! The wire contract: generated messages, clients and servers for every payvault
//! service, and the descriptor set that server reflection serves to grpcurl.
#![allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]

/// Encoded `FileDescriptorSet` of every payvault proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/payvault_descriptor.bin"));

pub mod payments {
    pub mod v1 {
        tonic::include_proto!("payvault.payments.v1");
    }
}

pub mod vault {
    pub mod v1 {
        tonic::include_proto!("payvault.vault.v1");
    }
}
