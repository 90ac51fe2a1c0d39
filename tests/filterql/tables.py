"""The FilterQL case tables: qlbridge's own hits and misses, and audiencehub's (filter, expected).

test_cases.py evaluates them; test_explain_props.py explains every one of them, since together they
hold every syntax form.
"""

from __future__ import annotations

# -- qlbridge vm/filterqlvm_test.go: hits ----------------------------------------------------------
QLBRIDGE_HITS = [
    'FILTER name == "Yoda"',  # upper case sensitive name
    'FILTER name != "yoda"',  # we should be case-sensitive by default
    'FILTER name = "Yoda"',  # is equivalent to ==
    'FILTER "Yoda" == name',  # reverse order of identity/value
    'FILTER name != "Anakin"',  # negation on missing fields == true
    'FILTER first_name != "Anakin"',  # key doesn't exist
    'FILTER tolower(name) == "yoda"',  # use functions in evaluation
    'FILTER FullName == "Yoda, Jedi"',  # a Go method there, a field here
    'FILTER Address.City == "Detroit"',  # traverse with path.field
    'FILTER name LIKE "*da"',  # LIKE
    'FILTER name NOT LIKE "*kin"',  # LIKE negation
    'FILTER name CONTAINS "od"',  # contains
    'FILTER name NOT CONTAINS "kin"',
    'FILTER roles INTERSECTS ("user", "api")',
    'FILTER roles IN ("user", "api")',  # IN on a list is INTERSECTS
    'FILTER roles NOT INTERSECTS ("user", "guest")',
    'FILTER Created BETWEEN "12/01/2015" AND "01/01/2016"',
    'FILTER NOT Created BETWEEN "12/01/2012" AND "01/01/2013"',
    'FILTER Created < "now-1d"',  # date math
    'FILTER NOT ( Created > "now-1d") ',
    'FILTER NOT ( FakeDate > "now-1d") ',  # negated, missing field
    'FILTER Updated > "now-2h"',
    'FILTER transactions < "now-1h"',  # any of a list of times
    'FILTER FirstEvent.signedup < "now-2h"',
    'FILTER FirstEvent.signedup == "12/18/2015"',
    'FILTER lastevent.signedup < "now-2h"',
    'FILTER lastevent.signedup == "12/18/2015"',
    'FILTER `lastevent`.`signedup` == "12/18/2015"',  # back-quoted names
    'FILTER `last.event`.`has.period` == "12/18/2015"',
    'FILTER hits INTERSECTS ("bar", "foo")',
    'FILTER hits IN ("bar", "foo")',  # IN on a map tests its keys
    'FILTER hits NOT IN ("not-gonna-happen")',
    'FILTER lastevent IN ("signedup")',
    'FILTER lastevent NOT IN ("not-gonna-happen")',
    "FILTER *",  # match all
    """FILTER OR (
        name == "Rey"     -- false
        INCLUDE match_all_include
    )""",
    """FILTER OR (
        name == "Rey"     -- false
        INCLUDE is_yoda_true
    )""",
    """FILTER OR (
        EXISTS name,       -- inline comments
        EXISTS not_a_key,  -- more inline comments
    )""",
    "FILTER EXISTS transactions",
    """FILTER OR (
        EXISTS name
        EXISTS not_a_key   -- even if they have inline comments
    )""",
    'FILTER AND (name == "Yoda", city == "Peoria, IL", zip == 5, BankAmount > 50)',
    'FILTER AND (zip == "5", BankAmount > "50")',  # numeric strings coerced
    'FILTER bankamount > "9.4"',
    'FILTER AND (zip == 5, "Yoda" == name, OR ( city IN ( "Portland, OR", "New York, NY", "Peoria, IL" ) ) )',
    """FILTER OR (
        EXISTS q,
        AND (
            zip > 0,
            OR ( zip > 10000, zip < 100 )
        ),
        NOT ( name == "Yoda" ) )""",
    "FILTER hits.foo > 1.5",
    'FILTER hits.foo > "1.5"',
    "FILTER NOT ( hits.foo > 5.5 )",
    'FILTER not_a_field NOT IN ("Yoda")',
]

# -- qlbridge vm/filterqlvm_test.go: misses --------------------------------------------------------
QLBRIDGE_MISSES = [
    'FILTER name == "yoda"',  # casing
    'FILTER not_a_field + "yoda"',  # not a phrase
    "FILTER OR (false, false, AND (true, false))",
    'FILTER AND (name == "Yoda", city == "xxx", zip == 5)',
    'FILTER Created BETWEEN "12/01/2012" AND "01/01/2013"',
    'FILTER NOT Created BETWEEN "12/01/2015" AND "01/01/2016"',
    'FILTER lastevent.signedup > "now-2h"',
    'FILTER lastevent.signedup != "12/18/2015"',
    'FILTER transactionsnil < "now-1h"',  # empty list of times
    'FILTER ["hello","apple"] < "now-1h"',  # strings that are not dates
    "FILTER zip * 5 * 2",  # not a phrase
]


# -- audiencehub's own table: (filter, expected) against customer() at NOW ------------------------
CASES: list[tuple[str, bool]] = [
    # equality: case-sensitive, = is ==, operands swap, != and missing fields
    ('FILTER plan == "pro"', True),
    ('FILTER plan = "pro"', True),
    ('FILTER plan == "Pro"', False),
    ('FILTER "pro" == plan', True),
    ('FILTER plan != "free"', True),
    ('FILTER plan != "pro"', False),
    ('FILTER plan <> "free"', True),
    ('FILTER missing_field != "x"', True),
    ('FILTER missing_field == "x"', False),
    ("FILTER missing_field != other_missing", False),
    # numbers, and numeric strings coerced
    ("FILTER visits == 42", True),
    ('FILTER visits == "42"', True),
    ("FILTER visits == 42.0", True),
    ("FILTER visits > 41.5", True),
    ("FILTER visits >= 42", True),
    ("FILTER visits < 42", False),
    ('FILTER visits <= "42"', True),
    ('FILTER "42" == visits', True),
    ("FILTER 41 < visits", True),
    ("FILTER score_str > 70", True),
    ("FILTER score_str == 75", True),
    ('FILTER score_str == "75.0"', False),  # two strings compare as text (qlbridge)
    ("FILTER ltv > 1000", True),
    ("FILTER ratio < 0.3", True),
    ('FILTER visits > "abc"', False),
    ('FILTER visits != "abc"', False),  # a number and a non-numeric string: not ok (qlbridge)
    ("FILTER missing_field > 5", False),
    ("FILTER missing_field < 5", False),
    ("FILTER NOT (missing_field > 5)", True),
    # booleans
    ("FILTER vip == true", True),
    ("FILTER vip", True),
    ("FILTER opted_out", False),
    ("FILTER NOT opted_out", True),
    ('FILTER vip == "true"', False),  # a boolean and a string: not ok (qlbridge)
    ("FILTER optin_text == true", True),
    ("FILTER vip != false", True),
    ("FILTER missing_flag", False),
    ("FILTER NOT missing_flag", False),
    ("FILTER vip > true", False),
    # IN / NOT IN: lists intersect, maps test keys
    ('FILTER plan IN ("pro", "team")', True),
    ('FILTER plan IN ("free")', False),
    ('FILTER plan NOT IN ("free")', True),
    ('FILTER missing_field NOT IN ("x")', True),
    ('FILTER missing_field IN ("x")', False),
    ("FILTER visits IN (41, 42)", True),
    ('FILTER visits IN ("42")', True),
    ('FILTER tags IN ("b2b", "x")', True),
    ('FILTER tags IN ("x")', False),
    ('FILTER tags NOT IN ("x")', True),
    ('FILTER scores IN ("momentum")', True),
    ('FILTER scores IN ("nope")', False),
    ('FILTER "beta" IN tags', True),
    ("FILTER plan IN missing_list", False),
    ('FILTER plan IN ["pro", "x"]', True),
    ('FILTER plan in ("pro")', True),
    # INTERSECTS
    ('FILTER tags INTERSECTS ("beta", "zzz")', True),
    ('FILTER tags NOT INTERSECTS ("zzz")', True),
    ('FILTER tags INTERSECTS ("zzz")', False),
    ("FILTER nums INTERSECTS (3, 4)", True),
    # CONTAINS
    ('FILTER email CONTAINS "Lovelace"', True),
    ('FILTER email CONTAINS "lovelace"', False),
    ('FILTER email NOT CONTAINS "gmail"', True),
    ('FILTER tags CONTAINS "news"', True),
    ("FILTER nums CONTAINS 2", True),
    ('FILTER missing_field CONTAINS "x"', False),
    ('FILTER missing_field NOT CONTAINS "x"', True),
    # LIKE: * does not cross '/', ** does, ? one character, % is *
    ('FILTER first_name LIKE "A*"', True),
    ('FILTER first_name LIKE "a*"', False),
    ('FILTER first_name LIKE "A?a"', True),
    ('FILTER first_name LIKE "%da"', True),
    ('FILTER first_name NOT LIKE "B*"', True),
    ('FILTER url LIKE "*blog*"', False),
    ('FILTER url LIKE "**blog**"', True),
    ('FILTER tags LIKE "news*"', True),
    ('FILTER site LIKE "*.example.com"', True),
    ('FILTER first_name LIKE "[A-C]da"', True),
    ('FILTER missing_field NOT LIKE "x*"', True),
    # BETWEEN: exclusive at both ends; unknown when a side is missing
    ("FILTER visits BETWEEN 40 AND 50", True),
    ("FILTER visits BETWEEN 42 AND 50", False),
    ("FILTER visits BETWEEN 1 AND 42", False),
    ("FILTER visits NOT BETWEEN 40 AND 50", False),
    ("FILTER visits NOT BETWEEN 42 AND 50", True),
    ("FILTER visits between 40 and 50", True),
    ("FILTER missing_field BETWEEN 1 AND 2", False),
    ("FILTER missing_field NOT BETWEEN 1 AND 2", False),
    ("FILTER NOT (missing_field BETWEEN 1 AND 2)", False),
    ('FILTER signup BETWEEN "2026-01-01" AND "2026-03-01"', True),
    ('FILTER signup BETWEEN "now-40d" AND "now-30d"', True),
    ('FILTER signup BETWEEN "now-30d" AND "now"', False),
    ("FILTER ratio BETWEEN 0.2 AND 0.3", True),
    ("FILTER score_str BETWEEN 70 AND 80", False),  # BETWEEN reads numbers and dates only
    ("FILTER visits BETWEEN 50 AND 40", False),
    # EXISTS: true for "" and [] too
    ("FILTER EXISTS empty", True),
    ("FILTER exists(empty)", True),
    ("FILTER EXISTS nothing", True),
    ("FILTER EXISTS missing_field", False),
    ("FILTER NOT EXISTS missing_field", True),
    ("FILTER EXISTS scores.momentum", True),
    ("FILTER EXISTS scores.nope", False),
    # paths and quoting
    ("FILTER scores.momentum > 50", True),
    ('FILTER scores.nested.deep == "yes"', True),
    ('FILTER `utm.source` == "google"', True),
    ('FILTER utm.source == "google"', True),
    ("FILTER `scores`.`momentum` == 80", True),
    ("FILTER 'first_name' == \"Ada\"", True),
    ('FILTER company == "Toys R"" Us"', True),
    ('FILTER company == "Toys R\\" Us"', True),
    # dates: strings read as dates against date math, lists match on any element
    ('FILTER signup < "now-30d"', True),
    ('FILTER signup > "now-30d"', False),
    ('FILTER last_login > "now-1d"', True),
    ('FILTER last_login > "now-12h"', False),
    ('FILTER last_login > "now-1080m"', False),
    ('FILTER last_login >= "now-1080m"', True),
    ('FILTER last_login > "now-64801s"', True),
    ('FILTER renewal > "now+3w"', True),
    ('FILTER renewal > "now+1M"', False),
    ('FILTER signup > "now-1y"', True),
    ('FILTER birthday < "now-30y"', True),
    ('FILTER epoch_ms < "now-60d"', True),
    ("FILTER signup > 1767225600000", True),
    ('FILTER odd > "now-1d"', False),
    ('FILTER odd != "now-1d"', True),
    ('FILTER logins < "now-5d"', True),
    ('FILTER logins > "now-1d"', False),
    ('FILTER nothing < "now-1d"', False),
    ('FILTER signup == "2026-02-01T08:30:00Z"', True),
    ('FILTER signup == "02/01/2026"', False),
    ('FILTER signup < "2026-02-02"', True),
    ('FILTER "now-30d" > signup', True),
    ('FILTER _created < "now-180d"', True),
    ('FILTER _modified > "now-2h"', True),
    ("FILTER EXISTS _created", True),
    ('FILTER _created > "2025-01-01"', True),
    # AND / OR / NOT, groups and infix, optional commas, comments, keywords in any case
    ('FILTER AND (plan == "pro", visits > 40)', True),
    ('FILTER AND (plan == "pro", visits > 50)', False),
    ('FILTER OR (plan == "free", visits > 40)', True),
    ('FILTER OR (plan == "free", visits > 50)', False),
    ('FILTER NOT AND (plan == "pro", visits > 50)', True),
    ("FILTER AND ()", True),
    ("FILTER OR ()", False),
    ('FILTER plan == "pro" AND visits > 40', True),
    ('FILTER plan == "x" OR visits > 40', True),
    ('FILTER plan == "pro" && vip', True),
    ('FILTER plan == "x" || vip', True),
    ("FILTER !vip", False),
    ('FILTER AND (plan == "pro" AND (visits > 1), vip)', True),
    ('FILTER AND (\n  plan == "pro"   -- first\n  visits > 40\n  vip\n)', True),
    ('filter and (plan == "pro") from user alias pros', True),
    ('FILTER AND (OR (plan == "x", vip), NOT opted_out, /* block */ visits > 1)', True),
    # three-valued logic: unknown (a missing phrase) is not a match and NOT keeps it unknown
    ("FILTER AND (vip, missing_flag)", False),
    ("FILTER NOT AND (vip, missing_flag)", False),
    ("FILTER OR (missing_flag, vip)", True),
    ("FILTER NOT OR (missing_flag, opted_out)", True),
    ("FILTER NOT (visits * 2)", False),
    # arithmetic
    ("FILTER visits * 2 == 84", True),
    ("FILTER visits + 1 > 42", True),
    ("FILTER visits / 4 == 10", True),
    ("FILTER ratio * 4 == 1", True),
    ("FILTER visits % 5 == 2", True),
    ("FILTER visits - 2 == 40", True),
    ("FILTER missing_field + 1 > 0", False),
    # NULL
    ("FILTER missing_field == NULL", True),
    ("FILTER plan == NULL", False),
    ("FILTER plan != NULL", True),
    ("FILTER NAME != NULL", False),
    # string functions
    ('FILTER tolower(first_name) == "ada"', True),
    ('FILTER toupper(first_name) == "ADA"', True),
    ('FILTER string.lowercase(plan) == "pro"', True),
    ('FILTER contains(email, "Example")', True),
    ('FILTER contains(email, "zzz")', False),
    ('FILTER contains(missing_field, "x")', False),
    ('FILTER hasprefix(first_name, "Ad")', True),
    ('FILTER hassuffix(email, ".co.uk")', True),
    ('FILTER hasprefix(missing_field, "x")', False),
    ("FILTER len(first_name) == 3", True),
    ("FILTER len(tags) == 3", True),
    ("FILTER len(scores) == 3", True),
    ("FILTER len(visits) == 0", True),
    ("FILTER len(missing_field) > 0", False),
    ('FILTER split(site, ".") INTERSECTS ("example")', True),
    ('FILTER strip("  x ") == "x"', True),
    ('FILTER replace(plan, "p", "P") == "Pro"', True),
    ('FILTER join(tags, ",") == "beta,newsletter,b2b"', True),
    ('FILTER oneof(missing_field, empty, plan) == "pro"', True),
    # email and url functions
    ('FILTER email(email) == "ada.lovelace@example.co.uk"', True),
    ('FILTER emaildomain(email) == "example.co.uk"', True),
    ('FILTER emailname("Bob <bob@x.com>") == "Bob"', True),
    ('FILTER domain(url) == "example.co.uk"', True),
    ('FILTER domain(site) == "example.com"', True),
    ('FILTER domain(email) == "gmail.com"', False),
    ('FILTER host(url) == "www.example.co.uk"', True),
    ('FILTER path(url) == "/blog/post-1"', True),
    # casts
    ("FILTER tonumber(ltv) > 1234", True),
    ("FILTER toint(score_str) == 75", True),
    ('FILTER toint("5.56") == 5', True),
    ('FILTER tostring(visits) == "42"', True),
    ('FILTER tostring(ratio) == "0.25"', True),
    ("FILTER tobool(optin_text)", True),
    ('FILTER tostring(missing_field) == ""', True),
    # time functions
    ('FILTER todate(signup) < todate("now-30d")', True),
    ('FILTER todate("01/02/2006", birthday) < "now-30y"', True),
    ("FILTER now() > signup", True),
    ("FILTER now() > renewal", False),
    ("FILTER daysago(signup) == 37", True),
    ("FILTER daysago(last_login) < 1", True),
    ("FILTER daysago(renewal) < 0", True),
    ("FILTER yy(signup) == 26", True),
    ("FILTER mm(signup) == 2", True),
    ('FILTER yymm(signup) == "2602"', True),
    ("FILTER dayofweek(signup) == 0", True),
    ("FILTER hourofday(signup) == 8", True),
    ("FILTER hourofweek(signup) == 8", True),
    ("FILTER yy() == 26", True),
    ("FILTER mm() == 3", True),
    ("FILTER dayofweek() == 2", True),
    ("FILTER hourofday() == 12", True),
    # timewindow: at least N occurrences in the last D days
    ("FILTER timewindow(purchase, 2, 7)", True),
    ("FILTER timewindow(purchase, 3, 7)", False),
    ("FILTER timewindow(purchase, 3, 30)", True),
    ('FILTER timewindow("purchase", 1, 1)', False),
    ("FILTER timewindow(login, 1, 0.5)", True),
    ("FILTER timewindow(never_happened, 1, 30)", False),
    ("FILTER NOT timewindow(purchase, 2, 7)", False),
    ("FILTER timewindow(logins, 2, 10)", True),
    ('FILTER AND (timewindow(purchase, 1, 7), plan == "pro")', True),
    # statements
    ('FILTER plan == "pro" FROM user LIMIT 10 WITH a=1, b="x" ALIAS pros', True),
    ("FILTER *", True),
    ("FILTER match_all", True),
    ('Filter AnD (plan == "pro")', True),
    ('FILTER plan == "pro";', True),
    # INCLUDE
    ("FILTER INCLUDE pros", True),
    ("FILTER NOT INCLUDE frees", True),
    ("FILTER AND (INCLUDE pros, NOT INCLUDE frees)", True),
    ("FILTER INCLUDE frees", False),
    ("FILTER OR (INCLUDE frees, INCLUDE buyers)", True),
]
