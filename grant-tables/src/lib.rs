//! grant-tables
#![no_std]
