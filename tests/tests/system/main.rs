//! Every service, started together against the real stack.

mod helpers;
mod signup;
mod startup;
