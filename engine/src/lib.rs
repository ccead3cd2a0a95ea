//! Squall
