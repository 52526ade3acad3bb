/* testev_schema.h: the wr_schema of tests/proto/testev/v1/testev.proto, for runtime
 * tests. Index into testev_events with TESTEV_CREATED... */
#ifndef WARREN_TEST_TESTEV_SCHEMA_H
#define WARREN_TEST_TESTEV_SCHEMA_H

#include <warren/schema.h>
#include "testev/v1/testev.pb-c.h"

#define TESTEV_EXCHANGE "testev.events"
enum { TESTEV_CREATED = 0, TESTEV_UPDATED = 1, TESTEV_DELETED = 2 };

extern const wr_schema testev_schema;
extern const wr_event_type testev_events[3];

#endif
