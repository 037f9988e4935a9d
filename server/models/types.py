"""Column types shared by the models."""

from sqlalchemy import BigInteger, Integer

# Tables that grow with the data get 64-bit ids; SQLite only auto-increments INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
