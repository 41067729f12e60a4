#ifndef ONYX_CPROTOBUFC_SHIM_H
#define ONYX_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
