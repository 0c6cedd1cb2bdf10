#!/bin/sh
# Boot hook: wait until the Hyper-V host admin has set "Role" in pool 0
# (hv_kvp_daemon fills it a few seconds into boot), then report the
# provisioning status to the host in pool 1, where the host reads it as
# GuestExchangeItems of Msvm_KvpExchangeComponent (WMI).
#
# HYPERV_ROLE_WAIT: seconds to wait for the host (default 300).
set -u
wait_secs=${HYPERV_ROLE_WAIT:-300}

hvkvp write ProvisioningStatus "waiting for Role from the host"
if ! role=$(hvkvp read Role --wait="$wait_secs"); then
    hvkvp write ProvisioningStatus "failed: no Role from the host after ${wait_secs}s"
    exit 1
fi
hvkvp write ProvisioningRole "$role"
# Configure the machine for "$role" here.
hvkvp write ProvisioningStatus "ready"
