package org.infusionfhir.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchClientAutoConfiguration;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration;
import org.springframework.boot.autoconfigure.orm.jpa.HibernateJpaAutoConfiguration;
import org.springframework.boot.autoconfigure.quartz.QuartzAutoConfiguration;
import org.springframework.boot.autoconfigure.security.oauth2.resource.servlet.OAuth2ResourceServerAutoConfiguration;
import org.springframework.boot.autoconfigure.security.servlet.SecurityAutoConfiguration;
import org.springframework.boot.autoconfigure.security.servlet.SecurityFilterAutoConfiguration;
import org.springframework.boot.autoconfigure.security.servlet.UserDetailsServiceAutoConfiguration;
import org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration;
import org.springframework.context.annotation.Import;

/**
 * Entry point of the local, dev/test-only HAPI FHIR R4 JPA server.
 *
 * <p>HAPI's JPA configuration classes are imported explicitly; the Spring Boot auto-configurations
 * that would otherwise react to libraries HAPI drags onto the classpath (Quartz, Thymeleaf,
 * Elasticsearch clients, Boot's own Hibernate/JPA setup) are switched off because HAPI (or
 * {@link StorageConfig}) wires those parts itself.
 */
@SpringBootApplication(
		exclude = {
			QuartzAutoConfiguration.class,
			ThymeleafAutoConfiguration.class,
			ElasticsearchRestClientAutoConfiguration.class,
			ElasticsearchClientAutoConfiguration.class,
			HibernateJpaAutoConfiguration.class,
			SecurityAutoConfiguration.class,
			SecurityFilterAutoConfiguration.class,
			UserDetailsServiceAutoConfiguration.class,
			OAuth2ResourceServerAutoConfiguration.class
		})
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	ThreadPoolFactoryConfig.class,
	// only the in-memory message broker that Batch2 jobs run on; no subscription processing
	SubscriptionChannelConfig.class
})
public class LocalHapiServerApplication {

	public static void main(String[] args) {
		SpringApplication.run(LocalHapiServerApplication.class, args);
	}
}
