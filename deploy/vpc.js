// Optional VPC settings for the functions (ElastiCache is only reachable from
// inside its VPC). Both params empty: no VPC block at all.
module.exports = async ({ resolveVariable }) => {
  const list = async (name) =>
    String(await resolveVariable(`param:${name}`))
      .split(',')
      .map((value) => value.trim())
      .filter(Boolean);
  const securityGroupIds = await list('vpcSecurityGroupIds');
  const subnetIds = await list('vpcSubnetIds');
  // Empty lists are how Lambda spells "no VPC"; the framework insists on the keys.
  if (securityGroupIds.length === 0 && subnetIds.length === 0) return { securityGroupIds: [], subnetIds: [] };
  if (securityGroupIds.length === 0 || subnetIds.length === 0) {
    throw new Error('set both vpcSecurityGroupIds and vpcSubnetIds, or neither');
  }
  return { securityGroupIds, subnetIds };
};
