-- benefits 0.1.0 -> 0.2.0.  Every schema change of 0.2.0 is made here as well
-- as in the parts of the install script (sql/install/), so that an upgraded
-- database and a fresh 0.2.0 install have the same schema; test/t/070_upgrade.pl
-- compares the two.

\echo Use "ALTER EXTENSION benefits UPDATE TO '0.2.0'" to load this file. \quit
