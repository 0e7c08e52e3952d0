pub mod gateway;
pub mod standin;
