//! `framewire`: the command-line tool.

fn main() {}
