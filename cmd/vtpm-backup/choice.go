package main

import (
	"fmt"
	"slices"
	"strings"
)

// choiceValue is a string flag that takes one of a fixed set of words. Its
// type, "keep|new", is what --help shows after the flag name, so the choices
// read as choices rather than as a placeholder to fill in; a value outside
// them is refused while parsing (exit 2).
type choiceValue struct {
	target  *string
	choices []string
}

// newChoiceValue returns a choiceValue writing to target, which keeps its
// current value (usually "") until the flag is set.
func newChoiceValue(target *string, choices ...string) *choiceValue {
	return &choiceValue{target: target, choices: choices}
}

func (c *choiceValue) String() string { return *c.target }

func (c *choiceValue) Set(v string) error {
	if !slices.Contains(c.choices, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(c.choices, ", "))
	}
	*c.target = v
	return nil
}

func (c *choiceValue) Type() string { return strings.Join(c.choices, "|") }
