package org.infusionfhir.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/**
 * Storage side of the server: HAPI's storage settings and the Hibernate entity manager over the
 * data source that Spring Boot builds from the {@code spring.datasource.*} properties (H2 by
 * default; PostgreSQL with the Spring profile {@code postgres}, application-postgres.properties).
 */
@Configuration
@EnableTransactionManagement
public class StorageConfig {

	private static final Logger LOG = LoggerFactory.getLogger(StorageConfig.class);

	@Bean
	public JpaStorageSettings jpaStorageSettings(
			@Value("${hapi.reuse-cached-search-results-millis:#{null}}") Long reuseCachedSearchResultsMillis,
			@Value("${hapi.expunge-enabled:true}") boolean expungeEnabled,
			@Value("${hapi.allow-multiple-delete:true}") boolean allowMultipleDelete,
			@Value("${hapi.inline-resource-text-below-size:0}") int inlineResourceTextBelowSize) {
		JpaStorageSettings settings = new JpaStorageSettings();

		// Test server: every search runs afresh instead of answering from a cached result set.
		settings.setReuseCachedSearchResultsForMillis(reuseCachedSearchResultsMillis);

		// Resetting test data: $expunge, DELETE ...?_expunge=true and conditional deletes of many.
		settings.setExpungeEnabled(expungeEnabled);
		settings.setDeleteExpungeEnabled(expungeEnabled);
		settings.setAllowMultipleDelete(allowMultipleDelete);
		// Single node: let Batch2 jobs (e.g. the one behind DELETE ...?_expunge=true) move to their
		// next step at once instead of waiting for the once-a-minute maintenance pass.
		settings.setJobFastTrackingEnabled(true);

		// Keep HAPI's defaults explicit, since the sync client's tests rely on them.
		settings.setEnforceReferentialIntegrityOnWrite(true);
		settings.setEnforceReferentialIntegrityOnDelete(true);
		settings.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
		settings.setSuppressUpdatesWithNoChange(true);
		settings.setAutoCreatePlaceholderReferenceTargets(false);

		// Storage layout only: resource bodies up to this many characters live in HFJ_RES_VER's
		// text column instead of a separate LOB (0 = HAPI's default, always the LOB).
		settings.setInlineResourceTextBelowSize(inlineResourceTextBelowSize);

		LOG.info(
				"HAPI storage: searchReuse={}ms expunge={} multipleDelete={} refIntegrity(write/delete)=true/true"
						+ " clientIds={} suppressNoOpUpdates=true inlineTextBelow={}",
				reuseCachedSearchResultsMillis,
				expungeEnabled,
				allowMultipleDelete,
				settings.getResourceClientIdStrategy(),
				inlineResourceTextBelowSize);
		return settings;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	@Bean
	public SubscriptionSettings subscriptionSettings() {
		// No subscription types are enabled; the bean is still required by HAPI's JPA config.
		return new SubscriptionSettings();
	}

	@Bean
	@Primary
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings,
			DataSource dataSource,
			@Value("${hapi.hibernate.dialect:ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect}") String dialect,
			@Value("${hapi.hibernate.batch-size:20}") String batchSize) {
		LocalContainerEntityManagerFactoryBean factory =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		factory.setPersistenceUnitName("HAPI_PU");
		factory.setDataSource(dataSource);

		Map<String, Object> props = new HashMap<>(factory.getJpaPropertyMap());
		props.put("hibernate.dialect", dialect);
		props.put("hibernate.hbm2ddl.auto", "update");
		props.put("hibernate.search.enabled", "false");
		props.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
		props.put("hibernate.implicit_naming_strategy",
				"org.springframework.boot.orm.jpa.hibernate.SpringImplicitNamingStrategy");
		props.put("hibernate.physical_naming_strategy",
				"org.hibernate.boot.model.naming.CamelCaseToUnderscoresNamingStrategy");
		props.put("hibernate.format_sql", "false");
		props.put("hibernate.show_sql", "false");
		props.put("hibernate.jdbc.batch_size", batchSize);
		// Group inserts and updates by table so that JDBC batches fill (same statements, other order).
		props.put("hibernate.order_inserts", "true");
		props.put("hibernate.order_updates", "true");
		props.put("hibernate.cache.use_query_cache", "false");
		props.put("hibernate.cache.use_second_level_cache", "false");
		props.put("hibernate.cache.use_structured_entries", "false");
		props.put("hibernate.cache.use_minimal_puts", "false");
		factory.setJpaPropertyMap(props);
		return factory;
	}

	@Bean
	@Primary
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		JpaTransactionManager txManager = new JpaTransactionManager();
		txManager.setEntityManagerFactory(entityManagerFactory);
		return txManager;
	}
}
