/* testev_schema.c: hand-written equivalent of what protoc-gen-warren emits for
 * testev.proto (event table + JSON names), so runtime tests do not depend on the
 * plugin. */
#include "testev_schema.h"

const wr_event_type testev_events[3] = {
    {"testev.v1.WidgetCreated", "widget", WR_KIND_CREATED, TESTEV_EXCHANGE,
     &testev__v1__widget_created__descriptor, &testev_schema},
    {"testev.v1.WidgetUpdated", "widget", WR_KIND_UPDATED, TESTEV_EXCHANGE,
     &testev__v1__widget_updated__descriptor, &testev_schema},
    {"testev.v1.WidgetDeleted", "widget", WR_KIND_DELETED, TESTEV_EXCHANGE,
     &testev__v1__widget_deleted__descriptor, &testev_schema},
};

static const char *const widget_names[] = {"id", "name", "count"};
static const char *const event_names[] = {"meta", "data"};
static const char *const deleted_names[] = {"meta", "reason"};

static const wr_json_names testev_json[] = {
    {&testev__v1__widget__descriptor, widget_names},
    {&testev__v1__widget_created__descriptor, event_names},
    {&testev__v1__widget_updated__descriptor, event_names},
    {&testev__v1__widget_deleted__descriptor, deleted_names},
};

const wr_schema testev_schema = {
    WR_CODEGEN_ABI, "testev/v1/testev.proto", "testev.v1", TESTEV_EXCHANGE, 3, testev_events, 4,
    testev_json,
};
