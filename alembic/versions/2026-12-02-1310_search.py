"""the knowledge base: one search document per postmortem, finding, action and incident, written by triggers in the
transaction that writes the row (SQLite: an FTS5 table; PostgreSQL: a table with a weighted tsvector and a GIN index)

A document's id is the row's id * 8 + its type (0 postmortem, 1 finding, 2 action, 3 incident), so that a trigger
finds it by primary key. The title weighs more than the body in the ranking. What each document holds:
- postmortem: its title; summary and customer impact
- finding: its statement; evidence, the five whys and the category
- action: its title; description, success metric and counterfactual
- incident: its title; the text of its 20 latest timeline notes (each note rewrites the document: a bound keeps an
  incident with a thousand notes as cheap to annotate as one with ten)
Existing rows are indexed here. These tables are not in the models' metadata: alembic/env.py leaves them out of
autogenerate, and app/search.py reads them in SQL.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-02 13:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0041'
down_revision: str | None = '0040'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, type code, kind, title, body, postmortem id, columns whose change rewrites the document), each expression
# over the row as NEW; the body's pieces are joined by spaces. {whys} and {notes} differ between the databases.
DOCUMENTS = (
    ('postmortem', 0, 'postmortem', 'NEW.title', ('NEW.summary', 'NEW.customer_impact'), 'NEW.id',
     ('title', 'summary', 'customer_impact')),
    ('finding', 1, 'finding', 'NEW.statement', ('NEW.evidence', '{whys}', 'NEW.category'), 'NEW.postmortem_id',
     ('statement', 'evidence', 'whys', 'category')),
    ('action', 2, 'action', 'NEW.title', ('NEW.description', 'NEW.success_metric', 'NEW.counterfactual'),
     'NEW.postmortem_id', ('title', 'description', 'success_metric', 'counterfactual')),
    ('incident', 3, 'incident', 'NEW.title', ('{notes}',), 'NEW.postmortem_id', ('title', 'postmortem_id')),
)
SQLITE_PARTS = {
    '{whys}': "(SELECT group_concat(value, ' ') FROM json_each(NEW.whys))",
    '{notes}': "(SELECT group_concat(text, ' ') FROM (SELECT text FROM timeline_entry"
    " WHERE incident_id = NEW.id AND kind = 'note' ORDER BY at DESC, id DESC LIMIT 20))",
}
PG_PARTS = {
    '{whys}': "(SELECT string_agg(value, ' ') FROM json_array_elements_text(NEW.whys) AS value)",
    '{notes}': "(SELECT string_agg(text, ' ') FROM (SELECT text FROM timeline_entry"
    " WHERE incident_id = NEW.id AND kind = 'note' ORDER BY at DESC, id DESC LIMIT 20) AS latest)",
}


def _changed(watched: tuple[str, ...]) -> str:
    """An UPDATE trigger's WHEN: a watched column really changed. The applier writes an incident's settled columns,
    its title among them, after every batch of events; rewriting the document each time is what made a busy
    incident slow to annotate. (As text: PostgreSQL's json has no equality.)"""
    return " OR ".join(f"OLD.{c}::text IS DISTINCT FROM NEW.{c}::text" for c in watched)


def _body(parts: tuple[str, ...], names: dict[str, str]) -> str:
    return ' || \' \' || '.join(f"coalesce({names.get(p, p)}, '')" for p in parts)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_sqlite() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE search_document USING fts5(kind UNINDEXED, ref_id UNINDEXED, postmortem_id UNINDEXED,"
        " title, body, tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3')"
    )
    for table, code, kind, title, body, postmortem, watched in DOCUMENTS:
        values = f"NEW.id * 8 + {code}, '{kind}', NEW.id, {postmortem}, {title}, {_body(body, SQLITE_PARTS)}"
        insert = f"INSERT INTO search_document (rowid, kind, ref_id, postmortem_id, title, body) VALUES ({values});"
        op.execute(f"CREATE TRIGGER search_{table}_insert AFTER INSERT ON {table} BEGIN {insert} END")
        op.execute(
            f"CREATE TRIGGER search_{table}_update AFTER UPDATE OF {', '.join(watched)} ON {table}"
            f" WHEN {_changed(watched).replace('::text', '')} BEGIN"
            f" DELETE FROM search_document WHERE rowid = OLD.id * 8 + {code}; {insert} END"
        )
        op.execute(
            f"CREATE TRIGGER search_{table}_delete AFTER DELETE ON {table} BEGIN"
            f" DELETE FROM search_document WHERE rowid = OLD.id * 8 + {code}; END"
        )
        op.execute(
            f"INSERT INTO search_document (rowid, kind, ref_id, postmortem_id, title, body)"
            f" SELECT {values.replace('NEW.', 'NEW_.')} FROM {table} AS NEW_"
        )
    # A note added to an incident's timeline rewrites the incident's document.
    incident = DOCUMENTS[3]
    values = f"NEW.id * 8 + 3, 'incident', NEW.id, NEW.postmortem_id, NEW.title, {_body(incident[4], SQLITE_PARTS)}"
    op.execute(
        "CREATE TRIGGER search_timeline_note AFTER INSERT ON timeline_entry WHEN NEW.kind = 'note' BEGIN"
        " DELETE FROM search_document WHERE rowid = NEW.incident_id * 8 + 3;"
        " INSERT INTO search_document (rowid, kind, ref_id, postmortem_id, title, body)"
        f" SELECT {values.replace('NEW.', 'i.')}"
        " FROM incident AS i WHERE i.id = NEW.incident_id; END"
    )


def _upgrade_postgresql() -> None:
    op.execute(
        "CREATE TABLE search_document (id bigint PRIMARY KEY, kind varchar(16) NOT NULL, ref_id integer NOT NULL,"
        " postmortem_id integer, title text NOT NULL DEFAULT '', body text NOT NULL DEFAULT '',"
        " tsv tsvector GENERATED ALWAYS AS (setweight(to_tsvector('english', title), 'A')"
        " || setweight(to_tsvector('english', body), 'B')) STORED)"
    )
    op.execute("CREATE INDEX ix_search_document_tsv ON search_document USING gin (tsv)")
    for table, code, kind, title, body, postmortem, watched in DOCUMENTS:
        values = f"NEW.id::bigint * 8 + {code}, '{kind}', NEW.id, {postmortem}, coalesce({title}, ''), " + _body(
            body, PG_PARTS
        )
        op.execute(
            f"CREATE FUNCTION search_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF TG_OP = 'DELETE' THEN DELETE FROM search_document WHERE id = OLD.id::bigint * 8 + {code};"
            " RETURN OLD; END IF;"
            f" INSERT INTO search_document (id, kind, ref_id, postmortem_id, title, body) VALUES ({values})"
            " ON CONFLICT (id) DO UPDATE SET postmortem_id = EXCLUDED.postmortem_id, title = EXCLUDED.title,"
            " body = EXCLUDED.body; RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER search_{table} AFTER INSERT OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION"
            f" search_{table}()"
        )
        op.execute(
            f"CREATE TRIGGER search_{table}_update AFTER UPDATE OF {', '.join(watched)} ON {table} FOR EACH ROW"
            f" WHEN ({_changed(watched)}) EXECUTE FUNCTION search_{table}()"
        )
        op.execute(
            "INSERT INTO search_document (id, kind, ref_id, postmortem_id, title, body)"
            f" SELECT {values.replace('NEW.', 'NEW_.')} FROM {table} AS NEW_"
        )
    incident = DOCUMENTS[3]
    values = "i.id::bigint * 8 + 3, 'incident', i.id, i.postmortem_id, coalesce(i.title, ''), " + _body(
        incident[4], {'{notes}': PG_PARTS['{notes}'].replace('NEW.', 'i.')}
    )
    # Once per statement, not per row: the applier writes a batch of entries in one INSERT, and a busy incident's
    # document is rewritten once for the batch instead of once per note (each rewrite is a new row version and new
    # GIN entries).
    op.execute(
        "CREATE FUNCTION search_timeline_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " INSERT INTO search_document (id, kind, ref_id, postmortem_id, title, body)"
        f" SELECT {values} FROM incident AS i"
        " WHERE i.id IN (SELECT incident_id FROM inserted WHERE kind = 'note')"
        " ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER search_timeline_note AFTER INSERT ON timeline_entry REFERENCING NEW TABLE AS inserted"
        " FOR EACH STATEMENT EXECUTE FUNCTION search_timeline_note()"
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table in ('postmortem', 'finding', 'action', 'incident'):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS search_{table} ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS search_{table}_update ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS search_{table}()")
        else:
            for event in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS search_{table}_{event}")
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS search_timeline_note ON timeline_entry")
        op.execute("DROP FUNCTION IF EXISTS search_timeline_note()")
    else:
        op.execute("DROP TRIGGER IF EXISTS search_timeline_note")
    op.execute("DROP TABLE IF EXISTS search_document")
