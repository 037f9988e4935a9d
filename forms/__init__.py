"""Pure XLSForm/XForm logic: compile, parse the XForm, field schema, diff. No Flask, no DB."""
