"""Data import: one service, three doors (browser upload, REST API, management commands).

``schema`` says what each kind of file holds, ``reading`` turns a CSV file or JSON records into
chunks of text columns, ``validation`` checks and types a chunk (vectorized, no Django),
``storage`` stages the rows in a temporary table (COPY on PostgreSQL) and merges them, and
``service`` runs the whole import all-or-nothing.
"""
