// The Distributed layer; see ../../README.md and DESIGN.md for what it holds.
