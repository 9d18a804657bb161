//! Instruction handlers, one module per instruction family.

pub mod bmi;
pub mod ctrl;
pub mod int;
pub mod mmx;
pub mod seg;
pub mod sse;
pub mod string;
pub mod system;
pub mod x87;
