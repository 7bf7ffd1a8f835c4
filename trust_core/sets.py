"""The two sets every registry groups its entries in — methods and criteria alike: the paper's (Arun et al.
2021: eight methods, four criteria) and the extended one (the field's newer methods and tests beside them).
Import-light: the registries, the CLI's choices and the app's toggle read them from here."""

PAPER_SET = "paper"
EXTENDED_SET = "extended"
SETS = (PAPER_SET, EXTENDED_SET)
