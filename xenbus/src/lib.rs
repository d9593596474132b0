//! xenbus
#![no_std]
