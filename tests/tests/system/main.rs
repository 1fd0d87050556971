//! Every service, started together against the real stack.

mod gateway;
mod helpers;
mod saga;
mod signup;
mod startup;
mod trace;
