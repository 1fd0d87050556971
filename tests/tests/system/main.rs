//! Every service, started together against the real stack.

mod access;
mod board;
mod gateway;
mod helpers;
mod openapi;
mod saga;
mod signup;
mod startup;
mod trace;
